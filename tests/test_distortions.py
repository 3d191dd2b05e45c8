"""Each batched manipulation against a slow, literal per-image NumPy / scikit-image twin."""

import numpy as np
import pytest
import scipy.ndimage
import torch
from skimage.util import random_noise

from paradox_utils import distortions as D


@pytest.fixture(scope="module")
def images():
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def literal(image: np.ndarray, name: str, level) -> np.ndarray:
    """One (3, H, W) image, the paper's formulas written out."""
    if name == "contrast":
        return level * image + (1 - level) / 2
    if name == "illuminant":
        gains = (level, 1, 1) if np.isscalar(level) else level
        return np.stack([image[k] * gains[k] for k in range(3)])
    if name == "gamma":
        return image ** level
    if name == "blur":
        if level == 0:
            return image.copy()
        radius = max(p for p in range(51) if np.exp(-p * p / (2 * level**2)) > 1e-4)
        x = np.arange(-radius, radius + 1)
        kernel = np.exp(-x * x / (2 * level**2))
        kernel /= kernel.sum()
        out = scipy.ndimage.correlate1d(image, kernel, axis=2, mode="mirror")  # mirror = reflect-101
        return scipy.ndimage.correlate1d(out, kernel, axis=1, mode="mirror")
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["contrast", "illuminant", "gamma", "blur"])
def test_deterministic_manipulations_match_literal(images, name):
    for level in D.LEVELS[name]:
        fast = D.apply(images, name, level).numpy()
        slow = np.stack([literal(img, name, level) for img in images.numpy()])
        np.testing.assert_allclose(fast, slow, atol=1e-10, err_msg=f"{name}={level}")


def test_illuminant_accepts_three_gains(images):
    fast = D.apply(images, "illuminant", (0.2, 0.5, 0.9)).numpy()
    slow = np.stack([literal(img, "illuminant", (0.2, 0.5, 0.9)) for img in images.numpy()])
    np.testing.assert_allclose(fast, slow, atol=1e-12)


def test_blur_widths_follow_the_rule():
    assert [D.blur_kernel_width(s) for s in (0, 0.5, 1.0, 1.5)] == [1, 5, 9, 13]


def test_grid_is_the_papers():
    assert len(D.PAPER_GRID) == 37
    assert D.PAPER_GRID[0] == ("contrast", 0.01) and D.PAPER_GRID[-1] == ("poisson", 0.10)


@pytest.mark.parametrize("name", ["salt_pepper", "gaussian", "speckle", "poisson"])
def test_shared_noise_is_identical_across_batch_sizes(name):
    x = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    index = torch.arange(1000, 1256)
    whole = D.apply(x, name, 0.05, seed=3, index=index)
    for size in (1, 7):
        parts = [D.apply(x[s:s + size], name, 0.05, seed=3, index=index[s:s + size]) for s in range(0, 256, size)]
        assert torch.equal(torch.cat(parts), whole)
    shuffled = torch.randperm(256, generator=torch.Generator().manual_seed(2))
    assert torch.equal(D.apply(x[shuffled], name, 0.05, seed=3, index=index[shuffled]), whole[shuffled])
    assert not torch.equal(D.apply(x, name, 0.05, seed=4, index=index), whole)


def _flat(n=64, value=0.5):
    return torch.full((n, 3, 32, 32), value, dtype=torch.float64)


def test_salt_pepper_in_distribution():
    x = _flat()
    out = D.apply(x, "salt_pepper", 0.1, seed=0)
    flipped = out != 0.5
    assert abs(flipped.double().mean().item() - 0.1) < 0.005
    assert abs((out[flipped] == 1).double().mean().item() - 0.5) < 0.02
    reference = random_noise(x.numpy(), mode="s&p", amount=0.1, rng=0)
    assert abs((reference != 0.5).mean() - flipped.double().mean().item()) < 0.005
    assert set(np.unique(out.numpy())) <= {0.0, 0.5, 1.0}


@pytest.mark.parametrize("mode", ["gaussian", "speckle"])
def test_additive_noises_match_skimage_in_distribution(mode):
    for base in (0.5, 0.95):
        x = _flat(value=base)
        out = D.apply(x, mode, 0.05, seed=0).numpy()
        ref = random_noise(x.numpy(), mode=mode, var=0.05, rng=0)
        assert abs(out.mean() - ref.mean()) < 0.005, (mode, base)
        assert abs(out.std() - ref.std()) < 0.005, (mode, base)
        assert abs((out == 1).mean() - (ref == 1).mean()) < 0.005  # clipping at 1 alike


def test_poisson_is_variance_p_times_intensity():
    x = _flat(value=0.4)
    out = D.apply(x, "poisson", 0.01, seed=0).numpy()
    assert abs(out.mean() - 0.4) < 0.002
    assert abs(out.var() - 0.01 * 0.4) < 0.0003
    assert torch.equal(D.apply(x, "poisson", 0.0), x)


@pytest.mark.parametrize("name", ["salt_pepper", "gaussian", "speckle", "poisson", "blur"])
def test_zero_level_is_identity(images, name):
    assert torch.equal(D.apply(images, name, 0.0), images)


def test_bad_input_names_what_is_valid(images):
    with pytest.raises(ValueError, match="Unknown manipulation 'jpeg'; valid: contrast"):
        D.apply(images, "jpeg", 0.5)
    with pytest.raises(ValueError, match="outside its valid range"):
        D.apply(images, "contrast", 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        D.apply(images * 2, "contrast", 0.5)
    with pytest.raises(ValueError, match="shape"):
        D.apply(images[0], "contrast", 0.5)
    nan = images.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        D.apply(nan, "gamma", 0.5)


def test_augmentation_is_reproducible_and_varied():
    x = torch.rand(64, 3, 32, 32)
    aug = D.ManipulationAugment("all")
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)
    assert torch.equal(D.ManipulationAugment(None)(x, torch.Generator()), x)
    one = D.ManipulationAugment("contrast")(x, torch.Generator().manual_seed(0))
    centred = (one - 0.5).abs().amax(dim=(1, 2, 3)) <= (x - 0.5).abs().amax(dim=(1, 2, 3)) + 1e-6
    assert centred.all()  # contrast only pulls towards grey
    with pytest.raises(ValueError, match="Unknown manipulation"):
        D.ManipulationAugment("sharpen")


def test_identity_levels_and_the_clean_images_once(images):
    assert set(D.IDENTITY) == set(D.MANIPULATIONS)
    for name, level in D.IDENTITY.items():
        assert level in D.LEVELS[name] and D.is_identity(name, level)
        assert torch.equal(D.apply(images, name, level), images), name  # the identity, literally
    assert not D.is_identity("contrast", 0.5) and D.is_identity("blur", 0)
    with pytest.raises(ValueError, match="Unknown manipulation 'jpeg'"):
        D.is_identity("jpeg", 1.0)
    once = D.clean_once(D.PAPER_GRID)
    assert len(once) == 30 and [c for c in once if D.is_identity(*c)] == [("contrast", 1.0)]
    assert [c for c in D.PAPER_GRID if c in once] == once  # the order kept
    assert D.clean_once([("blur", 0.0), ("gamma", 1.0), ("blur", 1.0), ("own", 0.0)]) == [
        ("blur", 0.0), ("blur", 1.0), ("own", 0.0)]
