"""Conv kernels and the weights key that names a network's state."""

import torch

from paradox_utils import checkpoints, models
from paradox_utils import similarity as S


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
