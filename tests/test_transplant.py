"""Tests of paradox_utils.transplant: copying conv layers and their BatchNorms, BN
re-estimation, and the transplant chapter's experiments."""

import copy

import pandas as pd
import pytest
import torch

from paradox_utils import data, models
from paradox_utils.transplant import (
    TransplantResults,
    bn_neighbours,
    recalibrate_batchnorm,
    transplant,
    transplant_experiments,
)


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    a, b = models.build("resnet20").eval(), models.build("resnet20").eval()
    for net in (a, b):
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
    return a, b


def test_transplant_self_is_identity_and_all_layers_gives_donor(pair):
    a, b = pair
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        same = transplant(a, a, "layer2.1.conv2")
        assert torch.equal(same(x), a(x))
        everything = transplant(a, b, "all")
        b_with_a_head = transplant(b, b, [])
        b_with_a_head.fc.load_state_dict(a.fc.state_dict())
        torch.testing.assert_close(everything(x), b_with_a_head(x))
        a_with_b_head = transplant(a, b, "all")
        a_with_b_head.fc.load_state_dict(b.fc.state_dict())
        torch.testing.assert_close(a_with_b_head(x), b(x))  # with the donor's classifier: the donor itself


def test_transplant_copies_the_layer_and_its_batchnorms_only(pair):
    a, b = pair
    child = transplant(a, b, "layer2.1.conv2")
    assert bn_neighbours(a, "layer2.1.conv2") == ["layer2.1.bn1", "layer2.1.bn2"]
    state, sa, sb = child.state_dict(), a.state_dict(), b.state_dict()
    moved = {k for k in state if not torch.equal(state[k], sa[k])}
    assert moved == {k for k in sa if k.startswith(("layer2.1.conv2.", "layer2.1.bn1.", "layer2.1.bn2."))
                     and not k.endswith("num_batches_tracked") and not torch.equal(sa[k], sb[k])}
    bare = transplant(a, b, "layer2.1.conv2", include_bn=False).state_dict()
    assert torch.equal(bare["layer2.1.bn2.running_mean"], sa["layer2.1.bn2.running_mean"])


def test_transplant_of_res3c_branch2c_moves_it_and_its_batchnorms_only():
    """As the authors transplanted it: res3c_branch2c with bn3c_branch2b and bn3c_branch2c
    (the BatchNorms on either side of it), and nothing else of the donor."""
    torch.manual_seed(5)
    a, b = (models.build("resnet50_keras", num_classes=10, init="glorot_uniform").eval() for _ in range(2))
    with torch.no_grad():
        for net in (a, b):  # every tensor distinct between the two, so any copied one shows
            for m in net.modules():
                if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Conv2d, torch.nn.Linear)):
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        if getattr(m, name, None) is not None:
                            getattr(m, name).uniform_(0.5, 1.5)
    assert bn_neighbours(a, "res3c_branch2c") == ["bn3c_branch2b", "bn3c_branch2c"]
    sa, sb = a.state_dict(), b.state_dict()
    expected = {k for k in sa if k.startswith(("res3c_branch2c.", "bn3c_branch2b.", "bn3c_branch2c."))
                and not k.endswith("num_batches_tracked")}
    assert len(expected) == 2 + 2 * 4  # kernel, bias; γ, β, running mean and variance twice
    state = transplant(a, b, "res3c_branch2c").state_dict()
    assert {k for k in state if not torch.equal(state[k], sa[k])} == expected
    assert all(torch.equal(state[k], sb[k]) for k in expected)
    bare = transplant(a, b, "res3c_branch2c", include_bn=False).state_dict()
    assert {k for k in bare if not torch.equal(bare[k], sa[k])} == {"res3c_branch2c.weight", "res3c_branch2c.bias"}


def test_transplant_refuses_other_architectures_and_unknown_layers(pair):
    a, _ = pair
    with pytest.raises(ValueError, match="same architecture"):
        transplant(a, models.build("resnet20", num_classes=5), "conv1")
    with pytest.raises(ValueError, match="Unknown conv layers"):
        transplant(a, a, "layer9.conv1")


def test_transplant_all_without_batchnorms_moves_only_convs(pair):
    a, b = pair
    state, sa, sb = transplant(a, b, "all", include_bn=False).state_dict(), a.state_dict(), b.state_dict()
    convs = {f"{name}.{p}" for name, _ in models.conv_layers(a) for p in ("weight", "bias")} & set(sa)
    moved = {k for k in state if not torch.equal(state[k], sa[k])}
    assert moved == {k for k in convs if not torch.equal(sa[k], sb[k])} and moved  # BatchNorms, fc: the recipient's
    assert all(torch.equal(state[k], sb[k]) for k in convs)
    with_bn = transplant(a, b, "all").state_dict()
    assert not torch.equal(with_bn["bn1.running_mean"], sa["bn1.running_mean"])  # the default still copies them


def test_transplant_experiments_returns_the_chapter_tables(pair):
    parent, child = copy.deepcopy(pair[0]), copy.deepcopy(pair[1])  # evaluate() changes memory formats in place
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=generator)
    images = data.ImageSet(pixels, torch.randint(0, 10, (8,), generator=generator), torch.arange(8),
                           [str(i) for i in range(10)])
    out = transplant_experiments(parent, child, images, grid=[("contrast", 1.0), ("gamma", 0.8)],
                                 recalibration_images=torch.rand(16, 3, 32, 32), progress=False)
    assert isinstance(out, TransplantResults)
    assert out.summary.index.name == "variant" and out.one_layer in out.summary.index
    deviated = out.deviated
    assert deviated == out.profile.loc[out.profile["mean"].idxmin(), "layer"]
    one = f"parent + child's {deviated}"
    assert list(out.summary.index) == ["parent", "child", one, "parent + all child convs", f"{one} (conv only)",
                                       "parent + all child convs (conv only)", f"{one} (BN re-estimated)",
                                       "parent + all child convs (BN re-estimated)"]
    assert out.summary.loc["parent", "delta_vi"] == 0
    sweep = out.sweep.set_index("layer")
    assert len(sweep) == 21 and list(sweep.columns) == ["layer_correlation", "vi", "test_images", "delta_vi",
                                                        "delta_low", "delta_high", "verdict"]
    assert (sweep["test_images"] == 8).all() and (out.summary["test_images"] == 8).all()  # the set beside each VI
    assert (sweep["delta_low"] <= sweep["delta_vi"]).all() and (sweep["delta_vi"] <= sweep["delta_high"]).all()
    assert sweep.loc[deviated, "vi"] == out.summary.loc[one, "vi"]  # the same network, reached twice
    assert set(out.accuracy["net_id"]) == {*out.summary.index, *(f"sweep:{layer}" for layer in sweep.index)}
    without = transplant_experiments(parent, child, images, grid=[("contrast", 1.0)], sweep=False, resamples=10,
                                     progress=False)
    assert isinstance(without.sweep, pd.DataFrame) and without.sweep.empty  # the same type, no rows
    assert list(without.summary.index) == ["parent", "child", without.one_layer, "parent + all child convs",
                                           f"{without.one_layer} (conv only)", "parent + all child convs (conv only)"]


def test_recalibrate_batchnorm_matches_data_statistics(pair):
    a, _ = pair
    images = torch.rand(64, 3, 32, 32)
    fresh = recalibrate_batchnorm(a, images, batch_size=64)
    with torch.no_grad():
        first = fresh.bn1
        activations = fresh.conv1(fresh.normalise(images))
    torch.testing.assert_close(first.running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
