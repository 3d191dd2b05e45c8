import pytest
import torch

from paradox_utils import models


def test_resnet20_counts_match_keras():
    net = models.build("resnet20")
    assert models.count_keras_parameters(net) == 274_442
    assert sum(p.numel() for p in net.parameters()) == 273_066
    assert len(models.conv_layers(net)) == 21
    shortcuts = [m for n, m in models.conv_layers(net) if n.endswith("shortcut")]
    assert len(shortcuts) == 2 and all(m.kernel_size == (1, 1) and m.bias is not None for m in shortcuts)


def test_resnet50_counts():
    net = models.build("resnet50")
    assert sum(p.numel() for p in net.parameters()) == 25_557_032
    assert len(models.conv_layers(net)) == 53
    assert models.build("resnet50", num_classes=20).fc.out_features == 20


def test_forward_shapes_and_init():
    torch.manual_seed(0)
    net = models.build("resnet20").eval()
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    w = net.conv1.weight
    std = (2 / w[0].numel()) ** 0.5
    assert w.abs().max() <= 2 * std / 0.8796 + 1e-6  # truncated at two stds
    assert torch.all(net.conv1.bias == 0)


def test_conv_layers_of_state_dict_match_module():
    net = models.build("resnet20")
    from_module = [n for n, _ in models.conv_layers(net)]
    from_state = [n for n, _ in models.conv_layers(net.state_dict())]
    assert from_module == from_state


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = models.build("resnet20").state_dict()
    torch.manual_seed(3)
    b = models.build("resnet20").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arch", ["vgg16", "resnet18"])
def test_unknown_arch(arch):
    with pytest.raises(ValueError, match="Unknown architecture"):
        models.build(arch)


def test_unknown_init():
    with pytest.raises(ValueError, match="Unknown weight init"):
        models.build("resnet20", init="zeros")
