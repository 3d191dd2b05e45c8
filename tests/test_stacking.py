import pytest
import torch
import torch.nn.functional as F

from paradox_utils import models
from paradox_utils.stacking import StackedNetworks


def members(arch, k, **kw):
    nets = []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(models.build(arch, **kw).double())
    return nets


@pytest.mark.parametrize("arch,size,k,init", [("resnet20", 32, 3, None), ("resnet50", 64, 2, None),
                                              ("resnet50_keras", 32, 2, "glorot_uniform")])  # he_normal: ~15 s
@pytest.mark.slow
def test_stack_is_its_members_side_by_side(arch, size, k, init):
    """Forward (train and eval mode), gradients and updated BatchNorm statistics of the
    stack equal those of each network run alone (float64, random inputs)."""
    nets = members(arch, k, num_classes=7, init=init)
    stack = StackedNetworks(nets).double()
    x = torch.rand(4, k, 3, size, size, dtype=torch.float64)
    labels = torch.randint(0, 7, (4, k))
    for mode in ("train", "eval"):
        stack.train(mode == "train")
        for net in nets:
            net.train(mode == "train")
        wide = stack(x)
        assert wide.shape == (4, k, 7)
        alone = torch.stack([net(x[:, i]) for i, net in enumerate(nets)], 1)
        torch.testing.assert_close(wide, alone, rtol=1e-9, atol=1e-9)
        if mode == "train":
            sum(F.cross_entropy(wide[:, i], labels[:, i]) for i in range(k)).backward()
            sum(F.cross_entropy(alone[:, i], labels[:, i]) for i in range(k)).backward()
    grads = dict(stack.net.named_parameters())
    for i, net in enumerate(nets):
        member = stack.member_state_dict(i)
        state = net.state_dict()
        assert member.keys() == state.keys()
        for name, value in state.items():  # running stats after one training forward, counters too
            torch.testing.assert_close(member[name], value, rtol=1e-9, atol=1e-9)
        for name, param in net.named_parameters():
            torch.testing.assert_close(stack.member_tensor(name, grads[name].grad, i), param.grad,
                                       rtol=1e-7, atol=1e-9)


@pytest.mark.slow
def test_stack_round_trip_and_counters():
    nets = members("resnet20", 2)
    nets[0].bn1.num_batches_tracked += 2  # fine-tuned parents carry their own counts
    nets[1].bn1.num_batches_tracked += 5
    stack = StackedNetworks(nets)
    for i, net in enumerate(nets):
        for name, value in net.state_dict().items():
            assert torch.equal(stack.member_state_dict(i)[name], value)
    names = [n for n, _ in stack.net.named_parameters()]
    for name, param in zip(names, stack.net.parameters(), strict=True):
        parts = [stack.member_tensor(name, param.detach(), i) for i in range(2)]
        assert torch.equal(stack.stack_tensors(name, parts), param.detach())
    stack.train()
    stack(torch.rand(2, 2, 3, 32, 32, dtype=torch.float64))
    assert [int(stack.member_state_dict(i)["bn1.num_batches_tracked"]) for i in range(2)] == [3, 6]


def test_stack_refuses_mixed_architectures():
    with pytest.raises(ValueError, match="same architecture"):
        StackedNetworks([models.build("resnet20"), models.build("resnet20", num_classes=5)])
    with pytest.raises(ValueError, match="member images"):
        StackedNetworks(members("resnet20", 2))(torch.rand(1, 3, 3, 32, 32, dtype=torch.float64))
