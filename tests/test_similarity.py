"""Fast similarity paths against slow, literal twins (scipy.stats.pearsonr, per kernel)."""

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import pearsonr

from paradox_utils import models
from paradox_utils import similarity as S


def literal_r(wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """The K × K Pearson matrix, one scipy.stats.pearsonr call per kernel pair (NaN kept)."""
    k = len(wa)
    r = np.empty((k, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in range(k):
            for b in range(k):
                r[a, b] = pearsonr(wa[a].ravel(), wb[b].ravel())[0]
    return r


def literal_paper_layer(wa, wb) -> float:
    """The authors' loop, written out: greedy in A's order, lowest b on ties, r ≤ 0 or NaN → 0."""
    r = literal_r(wa, wb)
    taken, scores = set(), []
    for a in range(len(wa)):
        best, best_b = -np.inf, None
        for b in range(len(wb)):
            if b in taken or np.isnan(r[a, b]):
                continue
            if r[a, b] > best:
                best, best_b = r[a, b], b
        if best_b is None or best <= 0:
            scores.append(0.0)
        else:
            scores.append(best)
            taken.add(best_b)
    return float(np.mean(scores))


def literal_hungarian_layer(wa, wb) -> float:
    r = np.nan_to_num(literal_r(wa, wb))
    rows, cols = linear_sum_assignment(r, maximize=True)
    return float(r[rows, cols].mean())


def tricky_pair(seed=0):
    """Two random ResNet20 with zero-variance kernels and exact ties planted."""
    torch.manual_seed(seed)
    a, b = models.build("resnet20"), models.build("resnet20")
    with torch.no_grad():
        a.conv1.weight[3] = 0.7  # constant kernel in A
        b.layer1[0].conv1.weight[5] = 0.0  # constant kernel in B
        b.layer1[0].conv2.weight[2] = b.layer1[0].conv2.weight[7]  # a tie for every a
        a.layer1[0].conv2.weight[0] = b.layer1[0].conv2.weight[7] * 2 + 1  # r = 1 with both tied kernels
    return a, b


CHECKED = [*range(10), 20]  # stage 1 (zero-variance kernels, ties), stage 2, and one 64-kernel layer: the
#                            literal loop costs ~0.4 ms per kernel pair, so not all 21 layers


def kernels(net):
    return [w.detach().double().numpy() for i, (_, w) in enumerate(S.conv_kernels(net)) if i in CHECKED]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_paper_equals_literal_loop(dtype, tol):
    a, b = tricky_pair()
    fast = S.layer_similarities(a, b, "paper", dtype=dtype)[CHECKED]
    slow = np.array([literal_paper_layer(x, y) for x, y in zip(kernels(a), kernels(b), strict=True)])
    np.testing.assert_allclose(fast, slow, atol=tol)


def test_hungarian_equals_scipy_on_literal_matrix():
    a, b = tricky_pair(1)
    fast = S.layer_similarities(a, b, "hungarian", dtype=torch.float64)[CHECKED]
    slow = np.array([literal_hungarian_layer(x, y) for x, y in zip(kernels(a), kernels(b), strict=True)])
    np.testing.assert_allclose(fast, slow, atol=1e-10)


@pytest.mark.parametrize("method", S.METHODS)
def test_self_similarity_is_one(method):
    torch.manual_seed(2)
    net = models.build("resnet20")
    assert S.network_similarity(net, net, method) == pytest.approx(1.0, abs=1e-6)


def test_coupled_sees_through_a_consistent_permutation():
    torch.manual_seed(3)
    net = models.build("resnet20").eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.weight.data.uniform_(0.5, 1.5)
    twin, _ = S.permuted_copy(net, seed=5)
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), twin.eval()(x), atol=1e-4, rtol=1e-4)  # same function
    assert S.network_similarity(net, twin, "coupled") == pytest.approx(1.0, abs=1e-6)
    assert S.network_similarity(net, twin, "paper") < 0.9  # per-layer greedy is fooled by the input order


def test_coupled_graph_for_resnet50_is_consistent():
    convs, (fc, fc_in) = S.permutation_graph(models.build("resnet50"))
    assert len(convs) == 53 and fc == "fc" and fc_in == "layer4.0.out"
    produced = {out for _, out, _, _ in convs}
    assert all(inp in produced or inp == "input" for _, _, inp, _ in convs)


def test_pairwise_matches_pairs_and_cache(tmp_path):
    torch.manual_seed(4)
    nets = {f"n{i}": models.build("resnet20").state_dict() for i in range(5)}
    ids = list(nets)
    cache = tmp_path / "sim.parquet"
    matrix = S.pairwise_similarity({k: nets[k] for k in ids[:4]}, cache=cache, progress=False, block_bytes=2**16)
    for i in range(4):
        assert matrix[i, i] == 1
        for j in range(i + 1, 4):
            expected = S.network_similarity(nets[ids[i]], nets[ids[j]])
            assert matrix[i, j] == pytest.approx(expected, abs=1e-6) and matrix[j, i] == matrix[i, j]
    full, per_layer = S.pairwise_similarity(nets, cache=cache, progress=False, return_layers=True)
    np.testing.assert_allclose(full[:4, :4], matrix)
    assert per_layer.shape == (5, 5, 21)
    assert full[1, 4] == pytest.approx(S.network_similarity(nets["n1"], nets["n4"]), abs=1e-6)
    import pandas as pd

    assert len(pd.read_parquet(cache)) == 10  # 6 pairs first, then only the 4 new ones


def test_different_architectures_are_refused():
    with pytest.raises(ValueError, match="same architecture"):
        S.network_similarity(models.build("resnet20"), models.build("resnet20", num_classes=10).layer1)
    with pytest.raises(ValueError, match="Unknown similarity method"):
        S.network_similarity(models.build("resnet20"), models.build("resnet20"), "cosine")


def test_chance_level_is_above_zero():
    chance = S.chance_level("resnet20", n=3)
    assert 0.05 < chance["mean"] < 0.3 and chance["pairs"] == 3
    cka = S.chance_level("resnet20", n=3, method="cka", images=torch.rand(32, 3, 32, 32))
    assert 0 < cka["mean"] < 1 and cka["method"] == "cka"
    with pytest.raises(ValueError, match="probe images"):
        S.chance_level("resnet20", n=3, method="cka")


def test_cka_gram_form_equals_feature_form():
    torch.manual_seed(6)
    nets = [models.build("resnet20").eval() for _ in range(3)]
    images = torch.rand(40, 3, 32, 32)
    mean, per_layer = S.cka_matrix(nets, images, progress=False)
    acts = [S.probe_activations(n, images) for n in nets]
    assert set(per_layer) == {"layer1", "layer2", "layer3", "pool"}
    for layer in ("layer3", "pool"):  # the feature form needs p × p matrices: the narrow layers only
        matrix = per_layer[layer]
        for i in range(3):
            for j in range(3):
                assert matrix[i, j] == pytest.approx(S.linear_cka(acts[i][layer], acts[j][layer]), abs=1e-9)
    np.testing.assert_allclose(np.diag(mean), 1.0)
    x = torch.randn(50, 8, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert S.linear_cka(x, x @ q * 3) == pytest.approx(1.0)  # invariant to rotation and scale


def test_layer_profile():
    torch.manual_seed(7)
    a = models.build("resnet20")
    profile = S.layer_profile(a, a)
    assert list(profile.columns) == ["layer", "position", "mean", "std", "kernels"]
    assert len(profile) == 21 and np.allclose(profile["mean"], 1, atol=1e-6)
