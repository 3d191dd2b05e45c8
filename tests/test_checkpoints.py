import json

import pytest
import torch

from paradox_utils import checkpoints, models


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = models.build("resnet20").eval()
    net.bn1.running_mean.uniform_()  # make buffers non-trivial
    meta = checkpoints.save(tmp_path / "n1", net, "resnet20", 10, config={"lr": 1e-3}, parent=None)
    return tmp_path / "n1", net, meta


def test_round_trip_is_bit_identical(saved):
    path, net, meta = saved
    loaded, loaded_meta = checkpoints.load(path, arch="resnet20")
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), loaded(x))
    assert loaded_meta["config"] == {"lr": 1e-3} and loaded_meta["sha256"] == meta["sha256"]
    assert not list(path.parent.glob("*.tmp"))  # atomic writes leave nothing behind


def test_refuses_another_architecture(saved):
    path, _, _ = saved
    with pytest.raises(checkpoints.CheckpointError, match="is a resnet20, not a resnet50"):
        checkpoints.load(path, arch="resnet50")


def test_refuses_corrupt_file(saved):
    path, _, _ = saved
    tensors = path.with_suffix(".safetensors")
    blob = bytearray(tensors.read_bytes())
    blob[-100] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(checkpoints.CheckpointError, match="corrupt"):
        checkpoints.load(path)


def test_refuses_missing_sidecar_and_bad_json(saved):
    path, _, _ = saved
    sidecar = path.with_suffix(".json")
    sidecar.write_text("{not json")
    with pytest.raises(checkpoints.CheckpointError, match="not valid JSON"):
        checkpoints.load(path)
    sidecar.unlink()
    with pytest.raises(checkpoints.CheckpointError, match="sidecar .* is missing"):
        checkpoints.load(path)


def test_refuses_weights_that_do_not_fit(saved, tmp_path):
    path, _, _ = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    net50_path = tmp_path / "fake50"
    checkpoints.save(net50_path, models.build("resnet20"), "resnet20", 10)
    fake = json.loads(net50_path.with_suffix(".json").read_text())
    fake["arch"], fake["num_classes"] = "resnet50", 1000
    net50_path.with_suffix(".json").write_text(json.dumps(fake))
    with pytest.raises(checkpoints.CheckpointError, match="does not fit a resnet50"):
        checkpoints.load(net50_path)
    assert meta["arch"] == "resnet20"


def test_no_pickle_in_the_package():
    import pathlib

    import paradox_utils

    for file in pathlib.Path(paradox_utils.__file__).parent.glob("*.py"):
        text = file.read_text()
        assert "torch.load(" not in text or "weights_only=True" in text, file
