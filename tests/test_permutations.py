"""Channel alignment: permutation specs, weight matching, and that a permuted network computes the same function."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from paradox_utils import models
from paradox_utils import permutations as P
from paradox_utils import similarity as S


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


@pytest.mark.slow
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
