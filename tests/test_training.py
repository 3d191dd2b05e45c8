import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from paradox_utils import checkpoints, data, models, training
from paradox_utils.cluster import PopulationFailed, run_population
from paradox_utils.population import NetworkSpec, read_catalog
from paradox_utils.training import (
    TrainConfig,
    TrainingData,
    TrainingDiverged,
    config_differences,
    geometric_augment,
    learning_rate,
    train,
    train_group,
)

pytestmark = pytest.mark.usefixtures("cifar_source")  # training reads CIFAR-10 from PARADOX_CIFAR10

TINY = dict(epochs=2, train_per_class=20, val_per_class=5, batch_size=32)


def weights(path):
    return checkpoints.load_state(path)[0]


@pytest.mark.slow
def test_same_config_gives_bit_identical_weights(tmp_path):
    config = TrainConfig(**TINY, manipulation="all")
    train(config, tmp_path / "a", progress=False)
    train(config, tmp_path / "b", progress=False)
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = TrainConfig(**{**TINY, "seed": 1})
    train(other, tmp_path / "c", progress=False)
    assert not torch.equal(wa["conv1.weight"], weights(tmp_path / "c")["conv1.weight"])


@pytest.mark.slow
def test_bfloat16_training_is_deterministic_and_follows_float32(tmp_path):
    """Mixed precision's slow, literal twin is float32 training: same data, same steps, the same
    losses to within bfloat16's rounding (8 bits of mantissa: ~0.4 % per product); the weights it
    saves are float32; and a second run gives the same bits."""
    runs = {}
    for name, precision in (("f32", "float32"), ("bf16", "bfloat16"), ("bf16-again", "bfloat16")):
        meta = train(TrainConfig(**TINY, precision=precision), tmp_path / name, progress=False)
        runs[name] = meta["history"], weights(tmp_path / name)
    (h32, w32), (h16, w16), (_, again) = runs["f32"], runs["bf16"], runs["bf16-again"]
    assert all(torch.equal(w16[k], again[k]) for k in w16)
    assert all(w.dtype == torch.float32 for k, w in w16.items() if w.is_floating_point())
    for epoch32, epoch16 in zip(h32, h16, strict=True):
        assert epoch16["loss"] == pytest.approx(epoch32["loss"], rel=0.01)
    cosine = torch.nn.functional.cosine_similarity(w16["layer3.2.conv2.weight"].flatten(),
                                                   w32["layer3.2.conv2.weight"].flatten(), dim=0)
    assert 0.999 < cosine < 1.0  # near, and not the same: bfloat16 really ran


@pytest.mark.slow
def test_history_metadata_and_skip(tmp_path):
    meta = train(TrainConfig(**TINY), tmp_path / "n", progress=False)
    assert meta["status"] == "done" and meta["epochs_done"] == 2 and len(meta["history"]) == 2
    assert {"loss", "train_accuracy", "val_accuracy", "lr", "seconds"} <= set(meta["history"][0])
    before = (tmp_path / "n.safetensors").stat().st_mtime_ns
    train(TrainConfig(**TINY), tmp_path / "n", progress=False)  # finished: skipped
    assert (tmp_path / "n.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="another config"):
        train(TrainConfig(**{**TINY, "lr": 0.1}), tmp_path / "n", progress=False)


@pytest.mark.slow
def test_fine_tune_names_its_parent(tmp_path):
    train(TrainConfig(**TINY), tmp_path / "parent", progress=False, net_id="parent")
    child = train(TrainConfig(**{**TINY, "epochs": 1, "manipulation": "gamma", "lr": 1e-4}), tmp_path / "child",
                  parent=tmp_path / "parent", progress=False)
    assert child["parent"] == "parent"
    parent_w, child_w = weights(tmp_path / "parent"), weights(tmp_path / "child")
    assert not torch.equal(parent_w["conv1.weight"], child_w["conv1.weight"])
    assert torch.allclose(parent_w["conv1.weight"], child_w["conv1.weight"], atol=0.05)


KILLED_RUN = """
import sys, torch
torch.set_num_threads({threads})
from paradox_utils.training import TrainConfig, train
train(TrainConfig(**{config}), sys.argv[1], progress=False)
"""


def test_resume_after_kill_is_identical(tmp_path):
    config = dict(epochs=3, train_per_class=60, val_per_class=5, batch_size=32, manipulation="all")
    target = tmp_path / "killed"
    script = KILLED_RUN.format(threads=torch.get_num_threads(), config=config)
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], env=os.environ.copy())
    sidecar = Path(f"{target}.json")
    deadline = time.time() + 120
    while time.time() < deadline and not (sidecar.exists() and '"epochs_done": 1' in sidecar.read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-epoch 2
    process.wait()
    assert checkpoints.load_metadata(target)["epochs_done"] == 1
    resumed = train(TrainConfig(**config), target, progress=False)
    assert resumed["epochs_done"] == 3 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    train(TrainConfig(**config), tmp_path / "straight", progress=False)
    wa, wb = weights(target), weights(tmp_path / "straight")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_schedules():
    paper = TrainConfig(epochs=200, time_decay=0.0)
    assert learning_rate(paper, 80, 0, 1) == pytest.approx(1e-3)
    assert learning_rate(paper, 81, 0, 1) == pytest.approx(1e-4)
    assert learning_rate(paper, 181, 0, 1) == pytest.approx(5e-7)
    decayed = TrainConfig(lr=1e-3, time_decay=1e-6, schedule="constant")
    assert learning_rate(decayed, 0, 10**6, 1) == pytest.approx(5e-4)
    cosine = TrainConfig(epochs=2, schedule="cosine", time_decay=0.0)
    assert learning_rate(cosine, 1, 10, 10) == pytest.approx(5e-4)
    # one-cycle over 10 epochs × 10 steps: 0.1·lr at the start, lr at 20 %, half-way down at 60 %, 0 at the end
    cycle = TrainConfig(epochs=10, lr=0.2, schedule="onecycle", optimiser="sgd", time_decay=0.0)
    lrs = [learning_rate(cycle, i // 10, i, 10) for i in range(101)]
    assert lrs[0] == pytest.approx(0.02) and lrs[20] == pytest.approx(0.2) and max(lrs) == pytest.approx(0.2)
    assert lrs[60] == pytest.approx(0.1) and lrs[100] == pytest.approx(0.0)
    assert all(a <= b for a, b in zip(lrs[:20], lrs[1:21], strict=True))  # rises, then
    assert all(a >= b for a, b in zip(lrs[20:-1], lrs[21:], strict=True))  # falls


def test_a_setting_added_later_leaves_older_checkpoints_current():
    """A record made before a field existed reads as that field's default: current while the
    config keeps the default, stale once it does not."""
    config = TrainConfig(epochs=3)
    recorded = {k: v for k, v in config.to_dict().items() if k not in ("nesterov", "label_smoothing")}
    assert config_differences(recorded, config) == []
    assert config_differences(recorded, TrainConfig(epochs=3, label_smoothing=0.1)) == ["label_smoothing"]
    before_precision = {k: v for k, v in config.to_dict().items() if k != "precision"}
    assert config_differences(before_precision, config) == []
    assert config_differences(before_precision, TrainConfig(epochs=3, precision="bfloat16")) == ["precision"]
    with pytest.raises(ValueError, match="nesterov needs optimiser sgd"):
        TrainConfig(nesterov=True).validate()
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        TrainConfig(label_smoothing=1.0).validate()


def test_geometric_augment_is_batched_and_reproducible():
    x = torch.rand(16, 3, 32, 32)
    a = geometric_augment(x, torch.Generator().manual_seed(0))
    b = geometric_augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    same = geometric_augment(x, torch.Generator(), flip=0.0, zoom=0.0, shift=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("change,message", [({"epochs": 0}, "epochs"), ({"optimiser": "rmsprop"}, "optimiser"),
                                            ({"manipulation": "sepia"}, "Unknown manipulation"),
                                            ({"schedule": "step"}, "schedule"),
                                            ({"precision": "float16"}, "precision 'float16' is not one of"),
                                            ({"arch": "vgg16"}, "arch 'vgg16' is not one of resnet20, resnet50, "
                                                                "resnet50_keras")])
def test_impossible_configs_fail_fast(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change).validate()


def test_every_architecture_is_a_valid_config():
    for arch in ("resnet20", "resnet50", "resnet50_keras"):
        assert TrainConfig(arch=arch, dataset="imagenet").validate().arch == arch


def test_imagenet_training_path_on_the_sample(tmp_path, imagenet_root):
    """ResNet50 trained on an ImageFolder set passed in by the caller (the sample's val/)."""
    config = TrainConfig(arch="resnet50", dataset="imagenet", init="kaiming_normal", epochs=1, batch_size=10,
                         geometric=False, val_per_class=None)
    sample = data.load_imagenet("val", source=imagenet_root, train=config.geometric)
    meta = train(config, tmp_path / "r50", progress=False, data=TrainingData(sample, sample))
    assert meta["status"] == "done" and meta["history"][0]["images_per_second"] > 0
    assert len(meta["history"]) == 1 and 0 <= meta["history"][0]["train_accuracy"] <= 1
    model = checkpoints.load(tmp_path / "r50", arch="resnet50")[0]
    assert model.fc.out_features == 1000 and checkpoints.state_sha256(model) != ""


def test_geometric_false_means_no_random_crop_for_image_folders(imagenet_root, tmp_path, monkeypatch):
    """geometric=False loads ImageNet's train/ with the evaluation preprocessing (centre
    crop: the same image twice is the same tensor); geometric=True crops at random."""
    (tmp_path / "train").symlink_to(Path(imagenet_root) / "val")
    (tmp_path / "val").symlink_to(Path(imagenet_root) / "val")
    monkeypatch.setenv("PARADOX_IMAGENET", str(tmp_path))
    plain = TrainingData.for_config(TrainConfig(arch="resnet50", dataset="imagenet", geometric=False)).train
    assert not plain.train and torch.equal(plain[0][0], plain[0][0])
    augmented = TrainingData.for_config(TrainConfig(arch="resnet50", dataset="imagenet", geometric=True)).train
    torch.manual_seed(0)
    crops = [augmented[0][0] for _ in range(4)]
    assert augmented.train and any(not torch.equal(crops[0], c) for c in crops[1:])


GROUP = [dict(seed=0), dict(seed=1, init="glorot_uniform", manipulation="all"), dict(seed=2, geometric=False)]


def test_training_group_equals_its_members_trained_alone(tmp_path):
    """One SGD step of a stacked group gives each member the weights (BatchNorm statistics
    and counters included) that training it alone gives: same init, data order,
    augmentation stream, loss and L2 term. Over many steps float32 rounding is amplified
    by the dynamics (the stacking itself is exact in float64: tests/test_stacking.py)."""
    one_step = dict(epochs=1, train_per_class=3, val_per_class=5, batch_size=32, optimiser="sgd", lr=0.01)
    configs = [TrainConfig(**one_step, **changes) for changes in GROUP]
    grouped = train_group(configs, [tmp_path / f"g{i}" for i in range(3)], progress=False)
    for i, config in enumerate(configs):
        alone = train(config, tmp_path / f"a{i}", progress=False)
        wg, wa = weights(tmp_path / f"g{i}"), weights(tmp_path / f"a{i}")
        assert wg.keys() == wa.keys()
        for name in wa:
            torch.testing.assert_close(wg[name], wa[name], rtol=1e-5, atol=1e-6)
        assert grouped[i]["history"][0]["loss"] == pytest.approx(alone["history"][0]["loss"], rel=1e-5)
        assert grouped[i]["history"][0]["val_accuracy"] == alone["history"][0]["val_accuracy"]
        assert grouped[i]["history"][0]["group_size"] == 3 and grouped[i]["net_id"] == f"g{i}"
    with pytest.raises(ValueError, match=r"differs from config 0 in \['lr'\]"):
        train_group([configs[0], TrainConfig(**{**one_step, "lr": 0.1})], [tmp_path / "x", tmp_path / "y"])


def _crash_after(monkeypatch, saves):
    """Make the training loop die (as a kill would) after ``saves`` checkpoint writes."""
    real, count = checkpoints.save, {"n": 0}

    def save(*args, **kwargs):
        if count["n"] == saves:
            raise KeyboardInterrupt("simulated kill")
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "save", save)


def test_training_group_resumes_after_a_kill(tmp_path, monkeypatch):
    config = dict(epochs=3, train_per_class=20, val_per_class=5, batch_size=32)
    configs = [TrainConfig(**config, **changes) for changes in GROUP[:2]]
    straight = train_group(configs, [tmp_path / "s0", tmp_path / "s1"], progress=False)
    outs = [tmp_path / "k0", tmp_path / "k1"]
    with monkeypatch.context() as patch:  # killed after both members saved epoch 1
        _crash_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            train_group(configs, outs, progress=False)
    assert [checkpoints.load_metadata(o)["epochs_done"] for o in outs] == [1, 1]
    resumed = train_group(configs, outs, progress=False)
    for i in range(2):
        assert [h["epoch"] for h in resumed[i]["history"]] == [1, 2, 3]
        wa, wb = weights(outs[i]), weights(tmp_path / f"s{i}")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same grouping: bit-identical
        assert resumed[i]["history"][-1]["loss"] == straight[i]["history"][-1]["loss"]


def test_training_group_members_at_different_epochs_catch_up(tmp_path, monkeypatch):
    config = dict(epochs=3, train_per_class=20, val_per_class=5, batch_size=32)
    configs = [TrainConfig(**config, **changes) for changes in GROUP[:2]]
    outs = [tmp_path / "k0", tmp_path / "k1"]
    with monkeypatch.context() as patch:  # killed between the two members' epoch-2 checkpoints
        _crash_after(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            train_group(configs, outs, progress=False)
    assert [checkpoints.load_metadata(o)["epochs_done"] for o in outs] == [2, 1]
    resumed = train_group(configs, outs, progress=False)
    assert [m["status"] for m in resumed] == ["done", "done"]
    assert [h["group_size"] for h in resumed[1]["history"]] == [2, 1, 2]  # epoch 2 alone, then regrouped
    assert [h["epoch"] for h in resumed[0]["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_a_network_that_diverges_fails_and_is_never_catalogued_as_done(tmp_path, monkeypatch):
    """SGD at lr 1e6 turns the loss NaN within one epoch of 50 images: training raises one
    sentence naming the network, the epoch and the loss, and leaves no checkpoint; run_population
    records the network failed with that sentence. A last step that leaves the loss finite but
    the weights not is caught too; a fine-tune from weights holding NaN is refused before any step."""
    config = TrainConfig(epochs=1, train_per_class=5, val_per_class=5, batch_size=16, optimiser="sgd", lr=1e6)
    images = TrainingData.for_config(config)
    sentence = r"b003 diverged in epoch 1: the training loss is NaN; lower lr or use another schedule\."
    with pytest.raises(TrainingDiverged, match=f"^{sentence}$"):
        train(config, tmp_path / "b003", progress=False, data=images)
    assert not list(tmp_path.glob("b003.*"))
    with pytest.raises(PopulationFailed, match=f"The one network, b003, failed in training.*{sentence}"):
        run_population([NetworkSpec("b003", config)], tmp_path / "population", scheduler="serial", progress=False)
    catalog = read_catalog(tmp_path / "population")  # written before the run stops
    assert catalog.loc[0, "status"] == "failed" and re.search(sentence, catalog.loc[0, "error"])
    with monkeypatch.context() as patch:  # the epoch's last step sends the weights to ±inf after its loss is taken
        patch.setattr(training, "learning_rate", lambda c, e, iteration, steps: float("inf")
                      if iteration == steps - 1 else 0.01)
        with pytest.raises(TrainingDiverged, match=r"^b004 diverged in epoch 1: its \S+ holds NaN or ±inf; lower lr "
                                                   r"or use another schedule\.$"):
            train(config, tmp_path / "b004", progress=False, data=images)
    assert not list(tmp_path.glob("b004.*"))
    state = models.build("resnet20").state_dict()
    state["fc.bias"][0] = float("nan")
    checkpoints.save(tmp_path / "parent", state, "resnet20", 10, config=config.to_dict())
    with pytest.raises(checkpoints.NonFiniteWeights, match=r"parent\.safetensors: fc\.bias holds non-finite"):
        train(config, tmp_path / "child", parent=tmp_path / "parent", progress=False, data=images)
