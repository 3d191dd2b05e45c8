import numpy as np
import pandas as pd
import pytest
import torch

from paradox_utils import models, paradox
from paradox_utils.transplant import bn_neighbours, recalibrate_batchnorm, transplant


def table(vectors: dict[str, list[float]]) -> pd.DataFrame:
    cells = [("contrast", 0.5), ("contrast", 1.0), ("gamma", 0.3), ("blur", 1.0)]
    return pd.DataFrame([(k, m, lv, acc) for k, v in vectors.items() for (m, lv), acc in zip(cells, v, strict=True)],
                        columns=["net_id", "manipulation", "level", "accuracy"])


def test_compatibility_is_pearson_and_nan_for_constant():
    acc = table({"a": [0.1, 0.9, 0.5, 0.3], "b": [0.2, 0.8, 0.6, 0.1], "c": [0.5, 0.5, 0.5, 0.5]})
    with pytest.warns(RuntimeWarning, match="constant accuracy vector: c"):
        comp = paradox.compatibility(acc)
    vectors = paradox.accuracy_vectors(acc)
    assert comp.loc["a", "b"] == pytest.approx(np.corrcoef(vectors.loc["a"], vectors.loc["b"])[0, 1])
    assert np.isnan(comp.loc["a", "c"]) and np.isnan(comp.loc["c", "c"]) and comp.loc["a", "a"] == pytest.approx(1)


def test_difference_pairs_and_quadrants():
    ids = ["p", "c1", "c2", "u"]
    comp = pd.DataFrame(np.array([[1, 0.2, 0.9, 0.95], [0.2, 1, 0.3, 0.1], [0.9, 0.3, 1, 0.8], [0.95, 0.1, 0.8, 1]]),
                        index=ids, columns=ids)
    sim = np.array([[1, 0.99, 0.98, 0.2], [0.99, 1, 0.97, 0.2], [0.98, 0.97, 1, 0.2], [0.2, 0.2, 0.2, 1]])
    diff = paradox.difference(comp, sim, ids)
    assert diff.loc["p", "c1"] == pytest.approx(0.2 - 0.99)
    pairs = paradox.pair_table(comp, {"paper": paradox._as_frame(sim, ids)}, {"c1": "p", "c2": "p"})
    assert pairs.set_index(["a", "b"]).loc[("p", "c1"), "relation"] == "parent-child"
    assert pairs.set_index(["a", "b"]).loc[("c1", "c2"), "relation"] == "siblings"
    counts = paradox.quadrant_counts(pairs, "paper")
    assert counts["similar_yet_different"] == 2 and counts["different_yet_similar"] == 2  # (p,c1),(c1,c2); (p,u),(c2,u)
    top = paradox.most_paradoxical(pairs, "paper", n=1)
    assert (top.loc[0, "a"], top.loc[0, "b"]) == ("p", "c1")  # |0.2 - 0.99| is the largest


def test_mantel_detects_related_matrices_and_not_unrelated():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(12, 3))
    a = -np.linalg.norm(points[:, None] - points[None], axis=-1)
    b = a + rng.normal(scale=0.1, size=a.shape)
    b = (b + b.T) / 2
    strong = paradox.mantel(a, b, permutations=499)
    assert strong["r"] > 0.8 and strong["p"] < 0.01
    noise = rng.normal(size=a.shape)
    weak = paradox.mantel(a, (noise + noise.T) / 2, permutations=499)
    assert weak["p"] > 0.01
    assert paradox.mantel(a, b, permutations=99, seed=3) == paradox.mantel(a, b, permutations=99, seed=3)
    ci = paradox.bootstrap_correlation(a, b, resamples=200)
    assert ci["low"] <= ci["r"] <= ci["high"] and ci["low"] > 0.5


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


def test_transplant_refuses_other_architectures_and_unknown_layers(pair):
    a, _ = pair
    with pytest.raises(ValueError, match="same architecture"):
        transplant(a, models.build("resnet20", num_classes=5), "conv1")
    with pytest.raises(ValueError, match="Unknown conv layers"):
        transplant(a, a, "layer9.conv1")


def test_recalibrate_batchnorm_matches_data_statistics(pair):
    a, _ = pair
    images = torch.rand(64, 3, 32, 32)
    fresh = recalibrate_batchnorm(a, images, batch_size=64)
    with torch.no_grad():
        first = fresh.bn1
        activations = fresh.conv1(fresh.normalise(images))
    torch.testing.assert_close(first.running_mean, activations.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-4)
