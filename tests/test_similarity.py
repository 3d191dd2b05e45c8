"""Fast similarity paths against slow, literal twins (scipy.stats.pearsonr, per kernel)."""

import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import pearsonr

from paradox_utils import checkpoints, models
from paradox_utils import permutations as P
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
    assert S.layer_similarities(net, net, method).mean() == pytest.approx(1.0, abs=1e-6)


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
    assert S.layer_similarities(net, twin, "coupled").mean() == pytest.approx(1.0, abs=1e-6)
    assert S.layer_similarities(net, twin, "paper").mean() < 0.9  # per-layer greedy is fooled by the input order


def test_coupled_refuses_other_networks_in_one_sentence():
    net = models.build("resnet20")
    first = re.escape("coupled supports resnet20, resnet50, resnet50_keras; "
                      "this network's parameters match none of them (first difference: ")
    with pytest.raises(ValueError, match=first + "resnet20 has conv1.weight"):
        S.layer_similarities(net.layer1, net.layer1, "coupled")
    state = dict(net.state_dict(), **{"extra.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match=first + "this network has extra.weight, resnet20 has none"):
        P.spec_for(state)
    state = dict(models.build("resnet50").state_dict(), **{"layer1.0.conv2.weight": torch.zeros(64, 64, 1, 1)})
    with pytest.raises(ValueError, match=first + re.escape("layer1.0.conv2.weight is (64, 64, 1, 1) here, "
                                                           "(64, 64, 3, 3) in resnet50")):
        P.spec_for(state)
    assert P.spec_for(models.build("resnet20", num_classes=5)).arch == "resnet20"  # its own class count


@pytest.mark.slow
def test_pairwise_matches_pairs_and_cache(tmp_path):
    torch.manual_seed(4)
    nets = {f"n{i}": models.build("resnet20").state_dict() for i in range(5)}
    ids = list(nets)
    cache = tmp_path / "sim.parquet"
    matrix = S.pairwise_similarity_cached({k: nets[k] for k in ids[:4]}, cache=cache, progress=False,
                                          block_bytes=2**16).matrix
    for i in range(4):
        assert matrix[i, i] == 1
        for j in range(i + 1, 4):
            expected = S.layer_similarities(nets[ids[i]], nets[ids[j]]).mean()
            assert matrix[i, j] == pytest.approx(expected, abs=1e-6) and matrix[j, i] == matrix[i, j]
    measured = S.pairwise_similarity_cached(nets, cache=cache, progress=False)
    full, per_layer = measured.matrix, measured.layers
    np.testing.assert_allclose(full[:4, :4], matrix)
    assert per_layer.shape == (5, 5, 21)
    assert full[1, 4] == pytest.approx(S.layer_similarities(nets["n1"], nets["n4"]).mean(), abs=1e-6)
    assert len(pd.read_parquet(cache)) == 10  # 6 pairs first, then only the 4 new ones


def test_different_architectures_are_refused():
    with pytest.raises(ValueError, match="same architecture"):
        S.layer_similarities(models.build("resnet20"), models.build("resnet20", num_classes=10).layer1)
    with pytest.raises(ValueError, match="Unknown similarity method"):
        S.layer_similarities(models.build("resnet20"), models.build("resnet20"), "cosine")


def test_layer_profile():
    torch.manual_seed(7)
    a = models.build("resnet20")
    profile = S.layer_profile(a, a)
    assert list(profile.columns) == ["layer", "position", "mean", "std", "kernels"]
    assert len(profile) == 21 and np.allclose(profile["mean"], 1, atol=1e-6)


def save_networks(folder, n, seed=10):
    torch.manual_seed(seed)
    paths = []
    for i in range(n):
        checkpoints.save(folder / f"n{i}", models.build("resnet20"), "resnet20", 10)
        paths.append(str(folder / f"n{i}.safetensors"))
    return paths


@pytest.mark.parametrize("method", ["paper", "coupled"])
def test_pairwise_reads_each_checkpoint_once(tmp_path, monkeypatch, method):
    paths = save_networks(tmp_path, 3)
    reads = []
    original = checkpoints.load_state

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "load_state", counted)
    matrix = S.pairwise_similarity(paths, method=method, progress=False).matrix
    assert sorted(reads) == sorted(paths)  # N reads, not one per pair
    monkeypatch.setattr(checkpoints, "load_state", original)
    assert matrix[0, 2] == pytest.approx(S.layer_similarities(paths[0], paths[2], method).mean(), abs=1e-6)


def test_pairwise_of_no_network_is_refused_and_of_one_is_one():
    with pytest.raises(ValueError, match="needs at least one network; it was given none"):
        S.pairwise_similarity([], progress=False)
    with pytest.raises(ValueError, match="needs at least one network"):
        S.pairwise_similarity({}, method="coupled", progress=False)
    one = S.pairwise_similarity([models.build("resnet20")], progress=False)
    assert one.matrix.tolist() == [[1.0]] and one.layers.shape == (1, 1, 21) and np.all(one.layers == 1)
    with pytest.raises(ValueError, match="cka_matrix needs at least one network"):
        S.cka_matrix([], torch.rand(4, 3, 32, 32), progress=False)
    with pytest.raises(ValueError, match="at least two probe images"):
        S.cka_matrix([models.build("resnet20")], torch.rand(1, 3, 32, 32), progress=False)
    mean, per_layer = S.cka_matrix([models.build("resnet20").eval()], torch.rand(4, 3, 32, 32), progress=False)
    assert mean.shape == (1, 1) and mean[0, 0] == pytest.approx(1.0)


def cache_rows(cache):
    return pd.read_parquet(cache)


@pytest.mark.slow
def test_cache_recomputes_exactly_the_pairs_of_a_changed_network(tmp_path):
    torch.manual_seed(12)
    nets = [models.build("resnet20").state_dict() for _ in range(4)]
    cache = tmp_path / "sim.parquet"
    first = S.pairwise_similarity_cached(nets, cache=cache, progress=False).matrix
    assert len(cache_rows(cache)) == 6
    # poison the cached scores of pair (0, 1): a reused pair must come back poisoned
    table = cache_rows(cache)
    keys = [S.weights_key(n) for n in nets]
    poisoned = (table["a"] == keys[0]) & (table["b"] == keys[1])
    table["scores"] = [[0.5] * 21 if hit else list(s) for hit, s in zip(poisoned, table["scores"], strict=True)]
    table.to_parquet(cache, index=False)
    changed = [dict(n) for n in nets]
    changed[2]["layer2.1.conv1.weight"] = nets[0]["layer2.1.conv1.weight"].clone()  # a conv layer: r = 1 with 0
    again = S.pairwise_similarity_cached(changed, cache=cache, progress=False).matrix
    assert len(cache_rows(cache)) == 9  # the three pairs of network 2, nothing else
    assert again[0, 1] == 0.5  # reused
    truth = S.pairwise_similarity(changed, progress=False).matrix
    np.testing.assert_allclose(np.delete(np.delete(again, 1, 0), 1, 1), np.delete(np.delete(truth, 1, 0), 1, 1))
    assert again[0, 2] > first[0, 2] + 0.02  # the change mattered (one layer of 21 went from chance to 1)
    # a BatchNorm-only change is another network too: its pairs are recomputed (same values: kernels only)
    changed[3] = dict(changed[3], **{"bn1.running_mean": changed[3]["bn1.running_mean"] + 1})
    bn = S.pairwise_similarity_cached(changed, cache=cache, progress=False).matrix
    assert len(cache_rows(cache)) == 12 and bn[0, 3] == pytest.approx(truth[0, 3])
    # other settings are other rows: float64 reuses nothing of float32
    S.pairwise_similarity_cached(changed, cache=cache, dtype=torch.float64, progress=False)
    assert len(cache_rows(cache)) == 18 and set(cache_rows(cache)["settings"]) == {"dtype=float32", "dtype=float64"}


def test_an_unreadable_cache_is_rebuilt_with_a_warning(tmp_path):
    torch.manual_seed(13)
    nets = [models.build("resnet20").state_dict() for _ in range(3)]
    truth = S.pairwise_similarity(nets, progress=False).matrix
    cache = tmp_path / "sim.parquet"
    cache.write_bytes(b"not a parquet file \x00\xff" * 10)
    with pytest.warns(RuntimeWarning, match=f"similarity cache {re.escape(str(cache))} is unreadable"):
        matrix = S.pairwise_similarity_cached(nets, cache=cache, progress=False).matrix
    np.testing.assert_allclose(matrix, truth)
    assert len(cache_rows(cache)) == 3  # rebuilt
    umask = os.umask(0)
    os.umask(umask)
    assert cache.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, as open() makes it
    pd.DataFrame({"a": ["x"], "b": ["y"]}).to_parquet(cache)  # an older format: rebuilt as well
    with pytest.warns(RuntimeWarning, match="lacks columns"):
        np.testing.assert_allclose(S.pairwise_similarity_cached(nets, cache=cache, progress=False).matrix, truth)
    assert len(cache_rows(cache)) == 3
