"""The paper's eight image manipulations, batched in torch (as in the paper).

Images are float (N, 3, H, W) in [0, 1] on any device; every function returns a
new tensor of the same shape, dtype and device, still in [0, 1].

Shared noise (a project choice; the book's methods appendix): under :func:`apply`, image ``i``
receives noise from a generator seeded by (seed, manipulation, level, i) alone, so
the same image gets the same noise for every network, run, batch size, batch
composition and device. The noise is drawn on the CPU (one small generator per
image; ~5 µs each) and moved to the images' device; that is what makes it
device-independent.

Training augmentation (:class:`ManipulationAugment`) draws its levels and noise from
the training generator instead: reproducible, but not shared across networks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from .names import MANIPULATIONS  # the eight names; the foundation holds them, for the profiles' checks

__all__ = [
    "AUGMENT_RANGES", "IDENTITY", "LEVELS", "MANIPULATIONS", "PAPER_GRID", "ManipulationAugment", "apply",
    "blur_kernel_width", "check_level", "clean_once", "gaussian_kernel", "grid_cells", "is_identity",
]

NOISES = {"salt_pepper", "gaussian", "speckle", "poisson"}

LEVELS: dict[str, tuple[float, ...]] = {  # the paper's grids
    "contrast": (0.01, 0.05, 0.15, 0.30, 0.50, 0.75, 1.00),
    "illuminant": (0.05, 0.25, 0.50, 0.75, 1.00),  # gains (l, 1, 1) on (R, G, B)
    "blur": (0.0, 0.5, 1.0, 1.5),  # Gaussian sigma, pixels
    "gamma": (0.3, 0.8, 1.0, 1.2, 3.0),
    "salt_pepper": (0.0, 0.01, 0.05, 0.10),  # amount: fraction of elements replaced
    "gaussian": (0.0, 0.01, 0.05, 0.10),  # variance
    "speckle": (0.0, 0.01, 0.05, 0.10),  # variance
    "poisson": (0.0, 0.01, 0.05, 0.10),  # p: variance p·I
}

VALID_RANGES = {  # what apply() accepts (closed intervals)
    "contrast": (0.0, 1.0), "illuminant": (0.0, 1.0), "blur": (0.0, 8.0), "gamma": (0.01, 10.0),
    "salt_pepper": (0.0, 1.0), "gaussian": (0.0, 1.0), "speckle": (0.0, 1.0), "poisson": (0.0, 1.0),
}
IDENTITY: dict[str, float] = {  # the level at which each manipulation returns the image unchanged
    "contrast": 1.0, "illuminant": 1.0, "blur": 0.0, "gamma": 1.0,
    "salt_pepper": 0.0, "gaussian": 0.0, "speckle": 0.0, "poisson": 0.0,
}
AUGMENT_RANGES = {name: (min(LEVELS[name]), max(LEVELS[name])) for name in MANIPULATIONS}


def grid_cells(names: Sequence[str] | None = None) -> list[tuple[str, float]]:
    """The paper's cells for ``names`` (default all eight), in the paper's order."""
    names = MANIPULATIONS if names is None else names
    for name in names:
        _check_name(name)
    return [(n, lv) for n in names for lv in LEVELS[n]]


def _check_name(name: str) -> None:
    if name not in MANIPULATIONS:
        raise ValueError(f"Unknown manipulation {name!r}; valid: {', '.join(MANIPULATIONS)}.")


PAPER_GRID: list[tuple[str, float]] = grid_cells()  # the paper's 37 cells, in its order


def is_identity(name: str, level: float) -> bool:
    """True where ``name`` at ``level`` is the identity (the clean images): its :data:`IDENTITY` level."""
    _check_name(name)
    return float(level) == IDENTITY[name]


def clean_once(cells: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """``cells`` with every identity cell but the first dropped, the order kept.

    Each manipulation's grid holds its identity level, so the paper's 37 cells show the
    clean images eight times (contrast 1, illuminant 1, blur 0, gamma 1, the noises 0);
    a statistic that pools trials over cells counts each clean trial once by pooling these
    cells. The one kept is the first in ``cells``' order: on the paper's grid contrast = 1,
    the cell ``evaluation.clean_accuracy`` reads. The one rule for pooled κ, its null and
    its interval (``behaviour``, ``nulls``, ``bootstrap``). A name that is not one of the
    eight (a test's own cells) is never an identity.
    """
    out, seen = [], False
    for name, level in cells:
        if name in IDENTITY and float(level) == IDENTITY[name]:
            if seen:
                continue
            seen = True
        out.append((name, level))
    return out


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor of shape (N, 3, H, W), got {shape}.")
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [0, 1], got dtype {images.dtype}.")
    if images.numel() and (torch.isnan(images).any() or images.min() < 0 or images.max() > 1):
        raise ValueError("images must be floats in [0, 1] without NaNs.")


def check_level(name: str, level: float | Sequence[float]) -> tuple[float, ...]:
    """The level as a tuple (3 gains for illuminant, else 1 value), range-checked: one
    ValueError sentence for an unknown manipulation or a level out of range."""
    _check_name(name)
    values = tuple(float(v) for v in (level if isinstance(level, (list, tuple)) else [level]))
    if name == "illuminant" and len(values) == 1:
        values = (values[0], 1.0, 1.0)  # the authors' code: the level is the red gain
    if len(values) != (3 if name == "illuminant" else 1):
        wanted = "a float or 3 gains" if name == "illuminant" else "one float"
        raise ValueError(f"{name} takes {wanted}, got {level!r}.")
    lo, hi = VALID_RANGES[name]
    if any(not (lo <= v <= hi) for v in values):
        raise ValueError(f"{name} level {level!r} is outside its valid range [{lo}, {hi}].")
    return values


def blur_kernel_width(sigma: float) -> int:
    """2·max{p ≤ 50 : exp(−p²/2σ²) > 1e−4} + 1 (σ 0.5 → 5, 1.0 → 9, 1.5 → 13); 1 for σ = 0."""
    if sigma <= 0:
        return 1
    radius = max((p for p in range(51) if math.exp(-p * p / (2 * sigma * sigma)) > 1e-4), default=0)
    return 2 * radius + 1


def gaussian_kernel(sigma: float, width: int | None = None) -> torch.Tensor:
    """A normalised 1-d Gaussian of ``sigma`` (float64, length ``width``, centred).

    Taps beyond σ's own width (the rule above) are zero, so a wider tensor blurs
    exactly like the narrow one.
    """
    own = blur_kernel_width(sigma)
    width = own if width is None else width
    x = torch.arange(width, dtype=torch.float64) - (width - 1) / 2
    if sigma <= 0:
        return (x == 0).double()
    weights = torch.exp(-x * x / (2 * sigma * sigma)) * (x.abs() <= (own - 1) / 2)
    return weights / weights.sum()


def _blur(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, one σ per image (N,), reflect-101 border (OpenCV's default)."""
    n, c, h, w = images.shape
    width = max(blur_kernel_width(float(s)) for s in sigmas.unique())
    pad = width // 2
    if pad == 0:
        return images.clone()
    if pad >= min(h, w):
        raise ValueError(f"blur sigma {float(sigmas.max())} needs a {width}-pixel kernel, too wide for {h}x{w} images.")
    kernels = torch.stack([gaussian_kernel(float(s), width) for s in sigmas.cpu()])
    kernels = kernels.to(images.dtype).to(images.device).repeat_interleave(c, dim=0)  # (N*C, width)
    x = images.reshape(1, n * c, h, w)
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), kernels.view(n * c, 1, 1, width), groups=n * c)
    x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), kernels.view(n * c, 1, width, 1), groups=n * c)
    return x.view(n, c, h, w)


NoiseDraw = Callable[[str, torch.Tensor], torch.Tensor]


def _manipulate(images: torch.Tensor, name: str, levels: torch.Tensor, draw: NoiseDraw) -> torch.Tensor:
    """``name`` with a per-image level: ``levels`` is (N,) (illuminant: (N, 3)).

    ``draw(kind, like)`` supplies noise of ``like``'s shape: kind "uniform2" (two
    uniform fields stacked on a new first axis), "normal", or "poisson" (``like`` are
    the rates).
    """
    lv = levels.to(images.device, images.dtype)
    if name == "illuminant":
        return images * lv.view(-1, 3, 1, 1)
    per_image = lv.view(-1, 1, 1, 1)
    if name == "contrast":
        return per_image * images + (1 - per_image) / 2
    if name == "gamma":
        return images.pow(per_image)
    if name == "blur":
        return _blur(images, levels)
    if name == "salt_pepper":  # skimage random_noise(mode="s&p", salt_vs_pepper=0.5)
        flip, salt = draw("uniform2", images)
        flipped = flip < per_image
        out = torch.where(flipped & (salt < 0.5), torch.ones_like(images), images)
        return torch.where(flipped & (salt >= 0.5), torch.zeros_like(images), out)
    if name == "gaussian":  # skimage mode="gaussian", var = level
        return (images + draw("normal", images) * per_image.sqrt()).clamp(0, 1)
    if name == "speckle":  # skimage mode="speckle", var = level
        return (images + images * draw("normal", images) * per_image.sqrt()).clamp(0, 1)
    if name == "poisson":  # project: clip(Poisson(I/p)·p), p = 0 is the identity
        safe = torch.where(per_image > 0, per_image, torch.ones_like(per_image))
        noisy = draw("poisson", images / safe) * safe
        return torch.where(per_image > 0, noisy.clamp(0, 1), images)
    raise AssertionError(name)  # _check_name ran before


def _sample(kind: str, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noise on the CPU with ``generator``; ``like`` is a CPU tensor."""
    if kind == "uniform2":
        return torch.rand((2, *like.shape), generator=generator, dtype=like.dtype)
    if kind == "normal":
        return torch.randn(like.shape, generator=generator, dtype=like.dtype)
    return torch.poisson(like, generator=generator)


def _cell_seed(seed: int, name: str, level: tuple[float, ...], index: int) -> int:
    key = f"{int(seed)}|{name}|{','.join(f'{v:.6g}' for v in level)}|{int(index)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") & (2**63 - 1)


def _shared_draw(seed: int, name: str, level: tuple[float, ...], index: torch.Tensor) -> NoiseDraw:
    """Noise for image i from a generator seeded by (seed, name, level, index[i]) alone."""
    seeds = [_cell_seed(seed, name, level, i) for i in index.tolist()]

    def draw(kind: str, like: torch.Tensor) -> torch.Tensor:
        generator, host = torch.Generator(), like.detach().cpu()
        parts = []
        for k, item in zip(seeds, host, strict=True):
            generator.manual_seed(k)
            parts.append(_sample(kind, item, generator))
        return torch.stack(parts, dim=1 if kind == "uniform2" else 0).to(like.device)

    return draw


def apply(images: torch.Tensor, name: str, level: float | Sequence[float], seed: int = 0,
          index: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
    """Manipulation ``name`` at ``level`` on float images (N, 3, H, W) in [0, 1].

    ``index``: the images' dataset indices (default 0..N−1); with ``seed`` they key
    the shared noise, so image i gets identical noise in any batch, on any device.
    Raises ValueError for an unknown name, a level out of range, or bad images.
    """
    values = check_level(name, level)
    _check_images(images)
    n = images.shape[0]
    if n == 0:
        raise ValueError(f"{name} got an empty batch (0 images): there is nothing to manipulate.")
    index = torch.arange(n) if index is None else torch.as_tensor(index).flatten().cpu()
    if len(index) != n:
        raise ValueError(f"index has {len(index)} entries for {n} images.")
    levels = torch.tensor(values, dtype=torch.float64).expand(n, len(values))
    levels = levels if name == "illuminant" else levels[:, 0]
    draw = _shared_draw(seed, name, values, index) if name in NOISES else None
    return _manipulate(images, name, levels, draw)


class ManipulationAugment:
    """Training augmentation: each image gets one manipulation at a random level.

    ``which``: None (identity), one manipulation's name, or "all" (a uniformly random
    one of the eight per image). Levels are uniform in the paper's range for that
    manipulation (gamma: log-uniform; illuminant: three independent gains). All
    randomness comes from the ``generator`` passed at call time (CPU), so training
    stays deterministic.
    """

    def __init__(self, which: str | None = None):
        if which not in (None, "all"):
            _check_name(which)
        self.which = which

    def __repr__(self) -> str:
        return f"ManipulationAugment({self.which!r})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.which is None:
            return images
        n = images.shape[0]
        if self.which == "all":
            choice = torch.randint(len(MANIPULATIONS), (n,), generator=generator)
        else:
            choice = torch.full((n,), MANIPULATIONS.index(self.which))
        out = images.clone()
        for k, name in enumerate(MANIPULATIONS):
            rows = torch.nonzero(choice == k).flatten()
            if len(rows) == 0:
                continue
            levels = self._levels(name, len(rows), generator)
            draw = lambda kind, like: _sample(kind, like.cpu(), generator).to(like.device)  # noqa: E731
            out[rows.to(images.device)] = _manipulate(images[rows.to(images.device)], name, levels, draw)
        return out

    @staticmethod
    def _levels(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
        lo, hi = AUGMENT_RANGES[name]
        u = torch.rand((n, 3) if name == "illuminant" else (n,), generator=generator, dtype=torch.float64)
        if name == "gamma":
            return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        return lo + u * (hi - lo)
