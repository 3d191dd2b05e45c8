import pytest
import torch
import torch.nn.functional as F

from paradox_utils import models


def keras_count(model: torch.nn.Module) -> int:
    """Parameters + BatchNorm running mean/variance: the number Keras reports."""
    stats = sum(m.running_mean.numel() + m.running_var.numel()
                for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return sum(p.numel() for p in model.parameters()) + stats


def test_resnet20_counts_match_keras():
    net = models.build("resnet20")
    assert keras_count(net) == 274_442
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


def test_resnet50_keras_counts_names_and_keras_defaults():
    """The Keras count (BN statistics included), 53 biased convs under Keras's names,
    Keras's BatchNorm settings, and the default init: truncated he_normal convs, zero
    biases, glorot_uniform fc1000."""
    torch.manual_seed(0)
    net = models.build("resnet50_keras")
    assert keras_count(net) == 25_636_712
    assert sum(p.numel() for p in net.parameters()) == 25_583_592
    convs = dict(models.conv_layers(net))
    assert len(convs) == 53 and all(m.bias is not None for m in convs.values())
    names = dict(net.named_modules())
    for name in ("conv1", "bn_conv1", "res2a_branch2a", "bn2a_branch2a", "res3c_branch2c", "bn3c_branch2c",
                 "res2a_branch1", "bn2a_branch1", "res5c_branch2c", "fc1000"):
        assert name in names, name
    assert "res2b_branch1" not in names and "res3c_branch2c.weight" in net.state_dict()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 53 and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert models.num_classes(net) == 1000 and models.classifier(net) is net.fc1000
    for name in ("conv1", "res4b_branch2b"):  # he_normal: std sqrt(2 / fan_in) / 0.8796, truncated at 2 std
        w = convs[name].weight.detach()
        std = (2 / w[0].numel()) ** 0.5 / 0.87962566103423978
        assert w.abs().max() <= 2 * std + 1e-6 and float(w.std()) == pytest.approx(0.8796 * std, rel=0.05)
        assert torch.all(convs[name].bias == 0)
    limit = (6 / (2048 + 1000)) ** 0.5  # glorot_uniform, Keras Dense's default
    assert net.fc1000.weight.abs().max() <= limit and net.fc1000.weight.abs().max() > 0.99 * limit
    assert torch.all(net.fc1000.bias == 0)
    assert models.build("resnet50_keras", num_classes=20, init="glorot_uniform").fc1000.out_features == 20


def test_resnet50_keras_strides_sit_in_branch2a_and_the_shortcut():
    net = models.build("resnet50_keras", init="glorot_uniform")
    assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2) and net.conv1.padding == (3, 3)
    for stage in (2, 3, 4, 5):
        stride = (1, 1) if stage == 2 else (2, 2)  # stage 2's conv_block keeps the pooled size
        assert getattr(net, f"res{stage}a_branch2a").stride == stride
        assert getattr(net, f"res{stage}a_branch1").stride == stride
        assert getattr(net, f"res{stage}a_branch2b").stride == (1, 1)
        assert getattr(net, f"res{stage}a_branch2b").padding == (1, 1)  # 'same'
    strided = sorted(n for n, m in models.conv_layers(net) if m.stride != (1, 1))
    assert strided == ["conv1", "res3a_branch1", "res3a_branch2a", "res4a_branch1", "res4a_branch2a",
                       "res5a_branch1", "res5a_branch2a"]


def test_resnet50_keras_forward_shapes_at_224():
    """(2, 3, 224, 224) → (2, 1000); the stage outputs are 56, 28, 14 and 7 pixels wide
    (56 needs Keras 2.2.4's pool1_pad: without it the pool gives 55)."""
    torch.manual_seed(1)
    net = models.build("resnet50_keras", init="glorot_uniform").eval()
    stages = models.stage_outputs(net)
    assert stages == ["res2c_relu", "res3d_relu", "res4f_relu", "res5c_relu"]
    sizes = {}
    hooks = [net.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: sizes.update({n: tuple(o.shape)}))
             for n in stages]
    with torch.no_grad():
        out = net(torch.rand(2, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert [sizes[n] for n in stages] == [(2, 256, 56, 56), (2, 512, 28, 28), (2, 1024, 14, 14), (2, 2048, 7, 7)]


def keras_resnet50_literal(state: dict, x: torch.Tensor) -> torch.Tensor:
    """keras-applications 1.0.6's ResNet50, written out from its layer list with functional
    ops on a state_dict: explicit zero padding, valid convs, BatchNorm (inference, ε 1e-3)."""
    def conv(x, name, stride=1, pad=0):
        return F.conv2d(F.pad(x, (pad,) * 4), state[f"{name}.weight"], state[f"{name}.bias"], stride)

    def bn(x, name):
        return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                            state[f"{name}.bias"], training=False, eps=1e-3)

    x = (x - torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    x = F.relu(bn(conv(x, "conv1", 2, pad=3), "bn_conv1"))  # conv1_pad, conv1 (valid), bn_conv1
    x = F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)  # pool1_pad, MaxPooling2D
    for stage, letters, stride in ((2, "abc", 1), (3, "abcd", 2), (4, "abcdef", 2), (5, "abc", 2)):
        for letter in letters:
            s, b = (stride if letter == "a" else 1), f"{stage}{letter}"
            y = F.relu(bn(conv(x, f"res{b}_branch2a", s), f"bn{b}_branch2a"))
            y = F.relu(bn(conv(y, f"res{b}_branch2b", pad=1), f"bn{b}_branch2b"))
            y = bn(conv(y, f"res{b}_branch2c"), f"bn{b}_branch2c")
            shortcut = bn(conv(x, f"res{b}_branch1", s), f"bn{b}_branch1") if letter == "a" else x
            x = F.relu(y + shortcut)
    return F.linear(x.mean((2, 3)), state["fc1000.weight"], state["fc1000.bias"])  # avg_pool, fc1000 (logits)


def test_resnet50_keras_computes_the_keras_layer_list():
    torch.manual_seed(4)
    net = models.build("resnet50_keras", num_classes=10, init="glorot_uniform").double().eval()
    with torch.no_grad():  # BatchNorms and biases away from their neutral start, so each one matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.bias.normal_(0, 0.1)
    x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), keras_resnet50_literal(net.state_dict(), x), rtol=1e-10, atol=1e-10)


def test_torchvision_to_keras_names_every_layer_and_round_trips():
    keras, tv = models.build("resnet50_keras", init="glorot_uniform"), models.build("resnet50")
    names = models.torchvision_to_keras()
    assert names["layer2.2.conv3"] == "res3c_branch2c" and names["layer2.2.bn3"] == "bn3c_branch2c"
    assert names["layer1.0.downsample.0"] == "res2a_branch1" and names["bn1"] == "bn_conv1"
    assert names["fc"] == "fc1000" and names["layer4.2.conv1"] == "res5c_branch2a"
    back = {v: k for k, v in names.items()}
    assert len(back) == len(names) == 53 + 53 + 1  # one to one
    assert {back[names[k]] for k in names} == set(names)
    tv_convs, keras_convs = dict(models.conv_layers(tv)), dict(models.conv_layers(keras))
    assert [names[n] for n in tv_convs] == list(keras_convs)  # all 53 convs, in the same order
    tv_modules, keras_modules = dict(tv.named_modules()), dict(keras.named_modules())
    for tv_name, keras_name in names.items():  # one role, one kernel (or BatchNorm, classifier) shape
        assert tv_modules[tv_name].weight.shape == keras_modules[keras_name].weight.shape, tv_name


def test_build_for_loading_has_builds_names_and_shapes():
    for arch in models.ARCHITECTURES:
        built = models.build(arch, num_classes=7, init="glorot_uniform")  # fast: he_normal takes ~15 s for Keras's
        shell = models.build_for_loading(arch, num_classes=7)
        assert type(built) is type(shell)
        shapes = {k: v.shape for k, v in built.state_dict().items()}
        assert shapes == {k: v.shape for k, v in shell.state_dict().items()}
        shell.load_state_dict(built.state_dict())
        x = torch.rand(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(shell.eval()(x), built.eval()(x))  # the normalisation buffers came along
    with pytest.raises(ValueError, match="Unknown architecture"):
        models.build_for_loading("vgg16")
