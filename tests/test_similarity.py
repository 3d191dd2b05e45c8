"""Fast similarity paths against slow, literal twins (scipy.stats.pearsonr, per kernel)."""

import copy
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


@pytest.mark.parametrize("arch,stem_norm,fc_name,fc_in", [("resnet50", "bn1", "fc", "layer4.0.out"),
                                                            ("resnet50_keras", "bn_conv1", "fc1000", "res5a.out")])
def test_coupled_graph_for_resnet50_is_consistent(arch, stem_norm, fc_name, fc_in):
    convs, (fc, classifier_in) = S.permutation_graph(models.build(arch, init="glorot_uniform"))
    assert len(convs) == 53 and fc == fc_name and classifier_in == fc_in
    produced = {out for _, out, _, _ in convs}
    assert convs[0] == ("conv1", "stem", None, stem_norm)  # the image's channels are not permuted
    assert all(inp in produced for _, _, inp, _ in convs[1:])
    assert all(bn is not None for _, _, _, bn in convs)  # every conv of both has its BatchNorm


def test_resnet50_keras_groups_follow_its_blocks():
    """Within a block each branch feeds the next; block a's branch2c and branch1 start the
    stage's residual group, which every later branch2c adds onto and every branch2a reads."""
    convs, _ = S.permutation_graph(models.build("resnet50_keras", init="glorot_uniform"))
    graph = {name: (out, inp) for name, out, inp, _ in convs}
    assert graph["res3c_branch2b"] == ("res3c_branch2b", "res3c_branch2a")
    assert graph["res3c_branch2c"] == ("res3a.out", "res3c_branch2b")
    assert graph["res3a_branch1"] == ("res3a.out", "res2a.out") and graph["res3a_branch2a"][1] == "res2a.out"
    assert graph["res4a_branch2a"][1] == graph["res3d_branch2c"][0] == "res3a.out"


def test_weight_matching_recovers_a_permuted_resnet50_keras():
    """A channel-permuted copy of the Keras ResNet50 (biased convs) computes the same
    function, and weight matching undoes the permutation: every conv kernel and
    classifier row then correlates 1 with its twin (coupled similarity 1)."""
    torch.manual_seed(10)
    net = randomised_batchnorms(models.build("resnet50_keras", num_classes=10, init="glorot_uniform"))
    twin, _ = P.permuted_copy(net, seed=2)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), net(x), atol=1e-4, rtol=1e-4)
    matching = P.match_weights(net, twin, max_iter=3)  # three sweeps reach it for these seeds; a fourth only confirms
    rows = sum(net.state_dict()[name].shape[0] for name in P.spec_for(net).kernels)  # 26,560 kernels + 10
    assert matching.objectives[-1] == pytest.approx(rows, rel=1e-6)  # Σ r over all rows: each r = 1
    undone = P.permute_state(twin.state_dict(), matching.perms)
    assert all(torch.equal(undone[k], v) for k, v in net.state_dict().items())


def randomised_batchnorms(net):
    """BatchNorms with distinct per-channel values, so a wrongly permuted one shows."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return net.eval()


@pytest.mark.parametrize("arch", list(P.SPECS))
def test_spec_covers_the_network_and_permuting_by_it_keeps_its_function(arch):
    torch.manual_seed(8)
    net = randomised_batchnorms(models.build(arch, init="glorot_uniform"))  # any init; he_normal is slow for ResNet50
    spec = P.spec_for(net)
    state = net.state_dict()
    assert spec.arch == arch and list(spec.axes) == list(state)  # every entry, in the network's order
    for name, groups in spec.axes.items():
        assert len(groups) == state[name].ndim, name
    for group, members in spec.groups.items():  # one size per group
        assert len({state[name].shape[axis] for name, axis in members}) == 1, group
    twin, perms = P.permuted_copy(net, seed=1)
    assert all(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), net(x), atol=1e-4, rtol=1e-4)
        stem_norm = f"{spec.norms['conv1']}.weight"
        forgot = dict(P.permute_state(state, perms), **{stem_norm: state[stem_norm]})  # one entry left out
        broken = copy.deepcopy(net)
        broken.load_state_dict(forgot)
        assert not torch.allclose(broken(x), net(x), atol=1e-3)  # so the check above can fail


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


def test_weight_matching_ascends_and_stops_when_the_objective_stops_improving():
    torch.manual_seed(9)
    a, b = models.build("resnet20"), models.build("resnet20")
    matching = P.match_weights(a, b, dtype=torch.float64)
    objectives = np.array(matching.objectives)
    gains = np.diff(objectives)
    assert len(objectives) >= 3 and objectives[-1] > objectives[0] + 10
    assert np.all(gains >= -1e-9 * np.abs(objectives[:-1]))  # coordinate ascent never loses
    assert gains[-1] <= P.RTOL * abs(objectives[-2])  # it stopped because the gain was small ...
    assert np.all(gains[:-1] > P.RTOL * np.abs(objectives[:-2]))  # ... and not before
    assert len(P.match_weights(a, b, dtype=torch.float64, max_iter=1).objectives) == 2  # the guard
    # the objective, literally: Σ over every conv kernel and classifier row of pearsonr(A's, B's aligned)
    aligned = P.permute_state(b.state_dict(), matching.perms)
    literal = 0.0
    for name in P.spec_for(a).kernels:
        wa, wb = a.state_dict()[name].flatten(1).double().numpy(), aligned[name].flatten(1).double().numpy()
        literal += sum(pearsonr(x, y)[0] for x, y in zip(wa, wb, strict=True))
    assert objectives[-1] == pytest.approx(literal, rel=1e-9)
    # and coupled's layer scores are those per-kernel r of the conv layers
    scores = dict(S.kernel_scores(a, b, "coupled", dtype=torch.float64))
    for name in ("conv1", "layer2.0.shortcut", "layer3.2.conv2"):
        wa, wb = a.state_dict()[f"{name}.weight"].flatten(1).double(), aligned[f"{name}.weight"].flatten(1).double()
        expected = [pearsonr(x, y)[0] for x, y in zip(wa.numpy(), wb.numpy(), strict=True)]
        np.testing.assert_allclose(scores[name], expected, atol=1e-10)


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


def test_cka_probes_the_keras_resnet50_at_its_stage_outputs():
    """The default probes of the Keras ResNet50: each stage's last block (after its
    addition and ReLU) and the pooled features fc1000 reads."""
    torch.manual_seed(11)
    nets = [models.build("resnet50_keras", num_classes=10, init="glorot_uniform").eval() for _ in range(2)]
    images = torch.rand(6, 3, 32, 32)
    acts = S.probe_activations(nets[0], images)
    assert list(acts) == ["res2c_relu", "res3d_relu", "res4f_relu", "res5c_relu", "pool"]
    assert acts["res2c_relu"].shape == (6, 256 * 8 * 8) and acts["pool"].shape == (6, 2048)
    assert (acts["res5c_relu"] >= 0).all()  # after the block's ReLU
    with torch.no_grad():
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(
            acts["res5c_relu"].view(6, 2048, 1, 1), 1), 1)
    torch.testing.assert_close(acts["pool"], pooled)
    mean, per_layer = S.cka_matrix(nets, images, progress=False)
    assert set(per_layer) == set(acts) and mean.shape == (2, 2)
    np.testing.assert_allclose(np.diag(mean), 1.0)


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


def test_weights_key_covers_every_tensor_however_the_network_is_given(tmp_path):
    torch.manual_seed(11)
    net = models.build("resnet20")
    path = tmp_path / "n.safetensors"
    checkpoints.save(path, net, "resnet20", 10)
    key = S.weights_key(net)
    assert key == S.weights_key(net.state_dict()) == S.weights_key(path) and len(key) == 64
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["layer1.0.bn1.running_var"][0] += 1e-3  # not a conv: still another network
    assert S.weights_key(state) != key
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["layer1.0.bn1.num_batches_tracked"] += 1
    assert S.weights_key(state) != key


def cache_rows(cache):
    return pd.read_parquet(cache)


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
