"""Weight transplant: copy conv layers (and the BatchNorms around them) from a donor
into a recipient of the same architecture (PAPER_SPEC §6), and BN re-estimation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .models import conv_layers
from .similarity import permutation_graph

__all__ = ["bn_neighbours", "recalibrate_batchnorm", "transplant"]


def bn_neighbours(model: nn.Module, layer: str) -> list[str]:
    """The BatchNorms on either side of conv ``layer``: the one after it, and the one
    after the conv that feeds it (when exactly one conv does) — as the authors copied
    ``bn3c_branch2b`` and ``bn3c_branch2c`` with ``res3c_branch2c``."""
    convs, _ = permutation_graph(model)
    by_name = {name: (out, inp, bn) for name, out, inp, bn in convs}
    _, inp, bn = by_name[layer]
    feeders = [b for name, (out, _, b) in by_name.items() if out == inp]
    before = feeders if len(feeders) == 1 and feeders[0] is not None else []
    return [*before, *([bn] if bn else [])]


def transplant(recipient: nn.Module, donor: nn.Module, layers: str | Sequence[str],
               include_bn: bool = True) -> nn.Module:
    """A copy of ``recipient`` with the donor's named conv layers (kernel + bias).

    ``include_bn``: also copy the BatchNorms on either side (parameters and running
    statistics). ``layers="all"``: every conv and BatchNorm, keeping the recipient's
    classifier. Raises ValueError for networks of different architectures or an
    unknown layer name.
    """
    shapes_r = {k: tuple(v.shape) for k, v in recipient.state_dict().items()}
    shapes_d = {k: tuple(v.shape) for k, v in donor.state_dict().items()}
    if shapes_r != shapes_d:
        raise ValueError("Recipient and donor are not of the same architecture (their state_dicts differ in "
                         "names or shapes); transplant needs one architecture.")
    conv_names = [name for name, _ in conv_layers(recipient)]
    if layers == "all":
        chosen = conv_names
        norms = [n for n, m in recipient.named_modules() if isinstance(m, nn.BatchNorm2d)]
    else:
        chosen = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in chosen if name not in conv_names]
        if unknown:
            raise ValueError(f"Unknown conv layers {unknown}; valid: {', '.join(conv_names)}.")
        norms = sorted({bn for name in chosen for bn in bn_neighbours(recipient, name)}) if include_bn else []
    child = copy.deepcopy(recipient)
    source = dict(donor.named_modules())
    with torch.no_grad():
        for name in [*chosen, *norms]:
            target_state = child.get_submodule(name).state_dict()
            for key, value in source[name].state_dict().items():
                target_state[key].copy_(value)
    return child


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: torch.Tensor, batch_size: int = 250) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on clean
    float ``images`` (n, 3, H, W) in [0, 1] (cumulative average over the batches)."""
    model = copy.deepcopy(model)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size])
    return model.eval()
