"""Linear CKA (Kornblith et al., 2019): representation similarity on a fixed probe batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .distortions import IDENTITY, LEVELS, MANIPULATIONS, apply
from .models import classifier, stage_outputs
from .progress import tqdm

__all__ = ["cka_matrix", "distorted_cka", "linear_cka", "probe_activations", "probe_level"]


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples, from features.

    x: (n, p), y: (n, q). ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F ||Yᶜᵀ Yᶜ||_F), Xᶜ column-centred.
    """
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


@torch.inference_mode()
def probe_activations(model: nn.Module, images: torch.Tensor, layers: Sequence[str] | None = None,
                      batch_size: int = 250) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` (module names; default: each residual stage's output,
    ``models.stage_outputs``, and "pool", the pooled features the classifier reads) for
    float ``images`` (n, 3, H, W) → name → (n, features)."""
    model = model.eval()
    if layers is None:
        layers = [*stage_outputs(model), "pool"]
    captured: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = []
    for name in layers:
        if name == "pool":
            target = classifier(model)
            hooks.append(target.register_forward_hook(lambda m, inp, out: captured["pool"].append(inp[0].flatten(1))))
        else:
            hooks.append(model.get_submodule(name).register_forward_hook(
                lambda m, inp, out, name=name: captured[name].append(out.flatten(1))))
    try:
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(chunks) for name, chunks in captured.items()}


def _centred_gram_vector(features: torch.Tensor) -> torch.Tensor:
    """The n × n Gram matrix of centred features, flattened and scaled to unit norm."""
    x = (features - features.mean(0)).double()
    gram = x @ x.T
    return (gram / gram.norm()).flatten()


def cka_matrix(networks: Mapping[str, nn.Module] | Sequence[nn.Module], images: torch.Tensor,
               layers: Sequence[str] | None = None, progress: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Linear CKA between every pair of networks on one fixed probe batch.

    ``images``: float (n, 3, H, W) in [0, 1], the same for all networks. Returns the
    (N, N) mean over layers and the per-layer (N, N) matrices. Each network's
    centred n × n Gram matrix is computed once; a pair's CKA is then a dot product
    (CKA = ⟨K̃, L̃⟩ / (‖K̃‖ ‖L̃‖), equal to the feature formula of ``linear_cka``).
    One network gives 1 × 1 matrices of 1; none is refused.
    """
    items = list(networks.values()) if isinstance(networks, Mapping) else list(networks)
    if not items:
        raise ValueError("cka_matrix needs at least one network; it was given none.")
    if len(images) < 2:  # centring one example leaves all-zero features: CKA would be 0 / 0
        raise ValueError(f"cka_matrix needs at least two probe images; it was given {len(images)}.")
    vectors: dict[str, list[torch.Tensor]] = {}
    for model in tqdm(items, desc="probe activations", disable=not progress):
        for name, feats in probe_activations(model, images, layers).items():
            vectors.setdefault(name, []).append(_centred_gram_vector(feats))
    per_layer = {name: (torch.stack(v) @ torch.stack(v).T).cpu().numpy() for name, v in vectors.items()}
    return np.mean(list(per_layer.values()), axis=0), per_layer


def probe_level(name: str) -> float:
    """The level at which a manipulation distorts CKA's probe images: the middle of its grid's
    levels other than the identity (the upper of the two middle ones for an even count),
    e.g. contrast 0.30, blur 1.0, gaussian noise 0.05 — distorted clearly, not destroyed."""
    levels = [lv for lv in LEVELS[name] if lv != IDENTITY[name]]
    return levels[len(levels) // 2]


def distorted_cka(networks: Mapping[str, nn.Module] | Sequence[nn.Module], images: torch.Tensor,
                  manipulations: Sequence[str] | None = None, seed: int = 0,
                  progress: bool = True) -> dict[str, np.ndarray]:
    """Linear CKA of every pair on the probe images distorted by each manipulation: name →
    (N, N), the mean over the same layers as :func:`cka_matrix` (which computes each).

    ``images``: float (n, 3, H, W) in [0, 1]; each manipulation at :func:`probe_level`
    with shared noise (``seed``), so every network sees the same distorted images.
    Cost: one forward pass per network per manipulation; 12 ResNet20 on 500 probes × 8
    manipulations ≈ 50 s on two cores.
    """
    names = list(MANIPULATIONS if manipulations is None else manipulations)
    return {name: cka_matrix(networks, apply(images, name, probe_level(name), seed=seed), progress=progress)[0]
            for name in names}
