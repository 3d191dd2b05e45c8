"""Networks trained elsewhere: exported the ways users export them, imported, refused when they
cannot be read safely or do not fit, re-imported without recomputation, and analysed by
chapters 3–6 exactly as the same networks trained here."""

import functools
import html
import io
import json
import pickle
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from paradox_utils import (
    book_builder,
    checkpoints,
    cli,
    data,
    evaluation,
    models,
    pipeline,
    population,
    preamble,
    profiles,
    provenance,
    report,
    similarity,
    training,
    transplant,
)
from paradox_utils.importing import WEIGHT_SUFFIXES, ImportRefused, import_population, origin_sentence

from .test_pipeline import ROOT, USER_WORK, _tree_state

CATALOG_COLUMNS = ["net_id", "arch", "kind", "parent", "config", "labels", "status", "checkpoint", "sha256",
                   "val_accuracy", "epochs_done", "train_seconds", "error"]  # population.scan_catalog's


def network(seed: int, arch: str = "resnet20", num_classes: int | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = models.build(arch, num_classes)
    with torch.no_grad():  # BatchNorm statistics that are not the defaults, so they must travel too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export(state: dict, path, how: str) -> None:
    """Write ``state`` as a user would: a plain state_dict, safetensors, a Lightning
    checkpoint (``model.`` prefix, a loss weight beside it) or a training checkpoint dict
    saved from a DataParallel model."""
    if how == "state_dict":
        torch.save(state, path)
    elif how == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif how == "lightning":
        torch.save({"epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.4.0",
                    "state_dict": {**{f"model.{k}": v for k, v in state.items()},
                                   "criterion.weight": torch.ones(10)},
                    "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}]}, path)
    elif how == "checkpoint dict":
        torch.save({"epoch": 7, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


FORMATS = {"a.pt": "state_dict", "b.safetensors": "safetensors", "c.ckpt": "lightning", "d.pth": "checkpoint dict"}


@pytest.fixture
def exported(tmp_path):
    """Four random ResNet20, one per format, in ``tmp_path/src``: (folder, id → model)."""
    folder = tmp_path / "src"
    folder.mkdir()
    nets = {}
    for seed, (name, how) in enumerate(FORMATS.items()):
        nets[name.split(".")[0]] = network(seed)
        export(nets[name.split(".")[0]].state_dict(), folder / name, how)
    return folder, nets


def folders(tmp_path):
    return {"checkpoint_dir": tmp_path / "ck", "results_dir": tmp_path / "res"}


def test_every_format_imports_the_same_network(exported, tmp_path):
    folder, nets = exported
    result = import_population(folder, "resnet20", "mine", **folders(tmp_path))
    catalog = result.catalog
    assert list(catalog.columns) == [*CATALOG_COLUMNS, "source", "source_sha256"]
    assert list(catalog["net_id"]) == ["a", "b", "c", "d"] and set(catalog["kind"]) == {"base"}
    assert set(catalog["status"]) == {"done"} and sorted(result.written) == ["a", "b", "c", "d"]
    assert report.done_networks(tmp_path / "ck").equals(catalog)  # what chapters 3–6 read
    x = torch.rand(8, 3, 32, 32)
    for row in catalog.itertuples():
        original = nets[row.net_id]
        model, meta = checkpoints.load(row.checkpoint)
        assert all(torch.equal(v, original.state_dict()[k]) for k, v in model.state_dict().items())
        with torch.no_grad():
            assert torch.equal(model(x), original(x))
        assert meta["source"] == row.source and row.source.endswith(f"{row.net_id}.{row.source.split('.')[-1]}")
        assert meta["source_sha256"] == checkpoints.sha256_file(row.source) == row.source_sha256
        assert meta["source_format"] == FORMATS[row.source.split("/")[-1]]
        assert meta["normalisation"] == {"mean": list(models.CIFAR10_MEAN), "std": list(models.CIFAR10_STD)}
        assert json.loads(row.config)["normalisation"] == meta["normalisation"]
        assert "criterion.weight" not in load_file(row.checkpoint)  # the Lightning module's other tensors stay out
    # the profile it writes is one the pipeline accepts, pointing at these folders
    values = profiles.load_profile(str(result.profile))
    assert values["profile"] == "mine" and values["arch"] == "resnet20" and values["dataset"] == "cifar10"
    assert values["checkpoint_dir"] == str((tmp_path / "ck").resolve())
    assert values["results_dir"] == str((tmp_path / "res").resolve()) and "similarity_methods" not in values
    assert "--from 03_evaluate --to 05_paradox" in result.command  # no lineage: no child for the transplant
    origin = origin_sentence(catalog)  # the book's introduction: from where, how many, what, how normalised
    assert origin.startswith(f"The 4 resnet20 networks analysed here were imported from {folder.resolve()} (4 weight "
                             "files; all base networks (no lineage was given); inputs normalised with CIFAR-10's "
                             "mean and std)")


def refused(tmp_path, name: str, content, match: str, arch: str = "resnet20", how: str = "torch") -> None:
    folder = tmp_path / name.split(".")[0]
    folder.mkdir()
    if how == "torch":
        torch.save(content, folder / name)
    else:
        save_file(content, str(folder / name))
    with pytest.raises(ImportRefused, match=match):
        import_population(folder, arch, "mine", **folders(tmp_path / f"ck-{folder.name}"))
    assert not (tmp_path / f"ck-{folder.name}" / "ck" / "catalog.parquet").exists()


@pytest.fixture(autouse=True)
def _repository_untouched():
    """Every import here writes under pytest's folders, never the repository's: no file there
    changes, and no folder (an empty results folder included) appears."""
    def state():
        return _tree_state(*USER_WORK), sorted(str(p) for f in USER_WORK if f.exists() for p in f.rglob("*"))

    before = state()
    yield
    assert state() == before


def test_what_cannot_be_read_safely_or_does_not_fit_is_refused(tmp_path):
    state = network(0).state_dict()
    refused(tmp_path, "whole.pt", network(0), r"whole\.pt holds pickled Python objects .*torch\.save\(model\).* "
            r"save model\.state_dict\(\) instead")
    torchvision18 = models.build("torchvision:resnet18", 10).state_dict()
    refused(tmp_path, "r18.pt", torchvision18, r"r18\.pt does not fit resnet20: it lacks conv1\.bias \(\d+ of "
            r"resnet20's 139 tensors missing, \d+ unexpected, \d+ of another shape\)\.$")
    refused(tmp_path, "missing.pt", {k: v for k, v in state.items() if k != "layer2.0.shortcut.weight"},
            r"missing\.pt does not fit resnet20: it lacks layer2\.0\.shortcut\.weight \(1 of resnet20's 139 tensors "
            r"missing\)\.")
    refused(tmp_path, "shape.safetensors", {**state, "layer1.0.conv2.weight": torch.zeros(16, 16, 5, 5)},
            r"shape\.safetensors does not fit resnet20: layer1\.0\.conv2\.weight is \(16, 16, 5, 5\) there, "
            r"\(16, 16, 3, 3\) in resnet20 \(1 of another shape\)\.", how="safetensors")
    refused(tmp_path, "extra.pt", {**state, "fc2.weight": torch.zeros(3, 3)},
            r"extra\.pt does not fit resnet20: it has fc2\.weight, which resnet20 has not")
    refused(tmp_path, "lightning.ckpt", {"state_dict": {**{f"student.{k}": v for k, v in state.items()},
                                                        **{f"teacher.{k}": v for k, v in state.items()}}},
            r"lightning\.ckpt holds more than one resnet20 \(under student\. and teacher\.\)")
    refused(tmp_path, "list.pt", [1, 2, 3], r"list\.pt holds a list, not a state_dict")
    refused(tmp_path, "arch.pt", state, r"Unknown architecture 'resnet18'.*name it torchvision:resnet18",
            arch="resnet18")
    refused(tmp_path, "squeeze.pt", state, r"torchvision:squeezenet1_0 has no Linear classifier",
            arch="torchvision:squeezenet1_0")
    refused(tmp_path, "hundred.pt", {**state, "fc.weight": torch.zeros(100, 64), "fc.bias": torch.zeros(100)},
            r"100 outputs; the chapters evaluate on cifar10 \(10 classes\) or imagenet")
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ImportRefused, match="holds no"):
        import_population(folder, "resnet20", "mine", **folders(tmp_path / "ck-empty"))


def test_a_refused_file_leaves_the_catalog_and_a_trained_population_alone(exported, tmp_path):
    folder, _ = exported
    import_population(folder, "resnet20", "mine", **folders(tmp_path))
    catalog = tmp_path / "ck" / "catalog.parquet"
    before = catalog.read_bytes()
    torch.save(network(9), folder / "e.pt")  # a whole pickled model joins the folder
    with pytest.raises(ImportRefused, match=r"e\.pt holds pickled"):
        import_population(folder, "resnet20", "mine", **folders(tmp_path))
    assert catalog.read_bytes() == before
    (folder / "e.pt").unlink()
    trained = tmp_path / "trained"  # a folder of networks this project trained is never imported into
    checkpoints.save(trained / "b000", network(0), "resnet20", 10, config=training.TrainConfig().to_dict())
    with pytest.raises(ImportRefused, match=r"holds networks trained by this project \(b000"):
        import_population(folder, "resnet20", "mine", checkpoint_dir=trained, results_dir=tmp_path / "res")
    with pytest.raises(ImportRefused, match="should be a plain name"):
        import_population(folder, "resnet20", "../elsewhere", **folders(tmp_path / "x"))
    with pytest.raises(ImportRefused, match=r"^The profile name 'mine\.yaml' ends in \.yaml, so run --profile would "
                                            r"read it as a file: name the population without \.yaml or \.yml\.$"):
        import_population(folder, "resnet20", "mine.yaml", **folders(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


NON_FINITE = (r"holds non-finite values \(NaN or ±inf\): these weights cannot be analysed; re-export them from a "
              r"network that trained without diverging\.$")


def test_weights_that_are_not_finite_are_refused(tmp_path):
    """A state_dict whose layer1.1.conv1.weight is all NaN (the issue's case), one NaN or ±inf in
    a BatchNorm statistic, in any format: refused naming the file and the tensor as the file names
    it; a float64 value beyond float32's range, which would become inf in the network, likewise."""
    state = network(0).state_dict()
    nan = {**state, "layer1.1.conv1.weight": torch.full_like(state["layer1.1.conv1.weight"], float("nan"))}
    refused(tmp_path, "n.safetensors", nan, rf"^n\.safetensors: layer1\.1\.conv1\.weight {NON_FINITE}",
            how="safetensors")
    refused(tmp_path, "nan.pt", nan, rf"^nan\.pt: layer1\.1\.conv1\.weight {NON_FINITE}")
    for value in (float("inf"), -float("inf")):
        variance = state["bn1.running_var"].clone()
        variance[3] = value
        refused(tmp_path, f"v{int(value > 0)}.ckpt", {"state_dict": {f"model.{k}": v for k, v in
                                                                     {**state, "bn1.running_var": variance}.items()}},
                rf"^v{int(value > 0)}\.ckpt: model\.bn1\.running_var {NON_FINITE}")
    huge = state["fc.bias"].double()
    huge[0] = 1e300
    refused(tmp_path, "huge.pt", {**state, "fc.bias": huge},
            r"^huge\.pt: fc\.bias holds values beyond float32's range, which become ±inf in resnet20: these weights "
            r"cannot be analysed; re-export them in float32\.$")


class Payload:
    """A pickle that, unpickled, creates ``marker``: a file that must never appear."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


DTYPES = (torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.uint8, torch.bool,
          torch.complex64)
ODD_VALUES = (float("nan"), float("inf"), -float("inf"), 1e300)  # 1e300: finite in float64 only


def dense(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is an ordinary tensor with data (what safetensors holds)."""
    return tensor.layout == torch.strided and not tensor.is_meta


@functools.cache
def valid_state() -> dict[str, torch.Tensor]:
    return network(0).state_dict()


def mutated_state(data) -> dict[str, torch.Tensor]:
    """A valid resnet20 state_dict with one to three random mutations: a key dropped, added or
    wrapped, a tensor reshaped, recast, made sparse or meta, or given a NaN, ±inf or
    out-of-float32 entry."""
    state = {k: v.clone() for k, v in valid_state().items()}
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["drop", "add", "wrap", "reshape", "dtype", "layout", "value"]))
        if not state and kind != "add":
            continue
        key = data.draw(st.sampled_from(sorted(state))) if state else ""
        if kind == "drop":
            del state[key]
        elif kind == "add":
            name = data.draw(st.one_of(st.text("abfcl.0_1-/", min_size=1, max_size=12),
                                       st.sampled_from(["fc.weight.x", "module.fc.weight", "model.conv1.weight"])))
            state[name] = torch.zeros(data.draw(st.lists(st.integers(0, 3), max_size=3)))
        elif kind == "wrap":
            prefix = data.draw(st.sampled_from(["module.", "_orig_mod.", "model.", "a.b.", "."]))
            state = {prefix + k: v for k, v in state.items()}
        elif kind == "reshape":
            state[key] = torch.zeros(data.draw(st.lists(st.integers(0, 4), max_size=4)), dtype=state[key].dtype)
        elif kind == "dtype":
            state[key] = state[key].to(data.draw(st.sampled_from(DTYPES)))
        elif not dense(state[key]):
            continue
        elif kind == "layout":  # what torch.load(weights_only=True) also returns: sparse, or no data at all
            state[key] = state[key].to_sparse() if data.draw(st.booleans()) else state[key].to("meta")
        elif state[key].is_floating_point() and state[key].numel():
            value = data.draw(st.sampled_from(ODD_VALUES))
            tensor = state[key].double() if value == 1e300 else state[key]
            tensor.view(-1)[data.draw(st.integers(0, tensor.numel() - 1))] = value
            state[key] = tensor
    return state


def weight_file(data, marker) -> tuple[str, bytes]:
    """(a file name with a weight suffix, its bytes): a mutated state_dict in one of the
    containers users save, or in one they should not, possibly emptied, truncated, corrupted,
    or a pickle whose payload would create ``marker``."""
    state = mutated_state(data)
    container = data.draw(st.sampled_from(["plain", "plain", "dict", "lightning", "list", "tuple", "tensor", "scalar",
                                           "int keys", "text values", "empty"]))
    under = data.draw(st.sampled_from(["state_dict", "model", "other"]))
    content = {"plain": state, "dict": {"epoch": 3, under: state},
               "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "global_step": 1},
               "list": list(state.values()), "tuple": (state,), "tensor": torch.zeros(3),
               "scalar": data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.floats())),
               "int keys": dict(enumerate(state.values())), "text values": {**state, "conv1.weight": "weights"},
               "empty": {}}[container]
    suffix = data.draw(st.sampled_from(WEIGHT_SUFFIXES))
    if suffix == ".safetensors" and container in ("plain", "empty") and all(map(dense, state.values())):
        blob = safetensors.torch.save({k: v.contiguous() for k, v in content.items()})
    else:
        buffer = io.BytesIO()
        torch.save(content, buffer)
        blob = buffer.getvalue()
    damage = data.draw(st.sampled_from([None, None, None, "empty", "truncated", "flipped", "garbage", "payload",
                                        "raw payload"]))
    if damage == "empty":
        blob = b""
    elif damage == "truncated":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
    elif damage == "flipped":
        at = data.draw(st.integers(0, len(blob) - 1))
        blob = blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1:]
    elif damage == "garbage":
        blob = data.draw(st.binary(max_size=64))
    elif damage in ("payload", "raw payload"):
        buffer = io.BytesIO()
        if damage == "payload":  # inside torch.save's zip, beside real tensors
            torch.save({**state, "payload": Payload(marker)}, buffer)
        else:
            pickle.dump(Payload(marker), buffer, protocol=2)
        blob = buffer.getvalue()
    return f"net{suffix}", blob


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@pytest.mark.slow
@given(data=st.data())
def test_any_mutated_weight_file_imports_or_is_refused_in_one_sentence(tmp_path, data):
    """Random mutations of a valid resnet20 state_dict, in random containers and formats, damaged
    or carrying a pickled payload: the import either succeeds, and then every network it wrote loads
    with finite weights, or raises ImportRefused in one line; a payload never runs, and nothing is
    written but the checkpoint folder."""
    example = Path(tempfile.mkdtemp(dir=tmp_path))
    marker = example / "payload-ran"
    name, blob = weight_file(data, marker)
    (example / "src").mkdir()
    (example / "src" / name).write_bytes(blob)
    before = {p for p in tmp_path.rglob("*")}
    try:
        result = import_population(example / "src", "resnet20", "mine", checkpoint_dir=example / "ck",
                                   results_dir=example / "res")
    except ImportRefused as error:
        message = str(error)
        assert message.endswith(".") and "\n" not in message, message
    else:
        for row in result.catalog.itertuples():
            model, _ = checkpoints.load(row.checkpoint)
            assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert not marker.exists()
    assert (example / "src" / name).read_bytes() == blob
    written = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(example / "ck") for p in written), sorted(written)


def test_lineage_gives_parents_kinds_and_labels(exported, tmp_path):
    folder, _ = exported
    (folder / "a.pt").rename(folder / "parent net.pt")  # a stem that is no id: mapped in the CSV's file column
    lineage = tmp_path / "lineage.csv"
    lineage.write_text("net_id,parent,label,file\nb,p0,gamma,\nc,b,all,\np0,,,parent net.pt\n")
    result = import_population(folder, "resnet20", "mine", lineage, **folders(tmp_path))
    catalog = result.catalog.set_index("net_id")
    assert list(result.catalog["net_id"]) == ["d", "p0", "b", "c"]  # parents before offspring, else file order
    assert catalog.loc["c", "parent"] == "b" and catalog.loc["b", "parent"] == "p0"
    assert dict(catalog["kind"]) == {"d": "base", "p0": "base", "b": "finetune", "c": "finetune"}
    assert json.loads(catalog.loc["b", "labels"]) == {"label": "gamma"}
    meta = checkpoints.load_metadata(catalog.loc["c", "checkpoint"])
    assert meta["parent_sha256"] == catalog.loc["b", "sha256"]
    assert report.transplant_pair(result.catalog) == ("p0", "b")  # chapter 6 finds a parent and its child
    assert "--to" not in result.command
    assert "2 base networks and 2 offspring, by the lineage given with them" in origin_sentence(result.catalog)
    (tmp_path / "ck" / "catalog.parquet").write_text("torn")  # an unreadable catalog is rebuilt from the sidecars
    with pytest.warns(RuntimeWarning, match="rebuilt from the checkpoints' sidecars"):
        assert population.read_catalog(tmp_path / "ck").equals(result.catalog)
    for text, match in [("net_id,parent\nb,nobody\n", "gives b the parent nobody, which no file is"),
                        ("net_id,parent\nb,c\nc,b\n", "cycle of parents among b, c"),
                        ("net_id,parent\nzz,\n", "names zz, which no file is"),
                        ("net_id,mother\nb,c\n", "has columns net_id, mother"),
                        ("net_id,parent\nb,\nb,c\n", "lists b more than once"),
                        ("net_id,parent\nb,../p0\n", r"lineage\.csv's parent '\.\./p0' should be a plain name")]:
        lineage.write_text(text)
        with pytest.raises(ImportRefused, match=match):
            import_population(folder, "resnet20", "mine", lineage, **folders(tmp_path))
    shutil.copy(folder / "b.safetensors", folder / "d.safetensors")
    with pytest.raises(ImportRefused, match=r"d\.pth and d\.safetensors would both be network d"):
        import_population(folder, "resnet20", "mine", **folders(tmp_path))


class Untouchable(torch.nn.Module):
    """A network that must not run: its results are in the evaluation cache."""

    def forward(self, x):
        raise AssertionError("a network with cached results was evaluated again")


def test_reimport_is_idempotent_and_a_changed_file_alone_is_recomputed(exported, tmp_path):
    folder, _ = exported
    first = import_population(folder, "resnet20", "mine", **folders(tmp_path))
    (tmp_path / "ck" / "profile.yaml").write_text((tmp_path / "ck" / "profile.yaml").read_text()
                                                  + "eval_per_class: 10\n")  # the user's own setting
    files = sorted(p for p in (tmp_path / "ck").iterdir())
    stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = import_population(folder, "resnet20", "mine", **folders(tmp_path))
    assert again.written == [] and again.unchanged == ["a", "b", "c", "d"]
    assert again.catalog.equals(first.catalog)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == stamps  # not a byte rewritten
    assert yaml.safe_load(again.profile.read_text())["eval_per_class"] == 10
    # results keyed on the checkpoints' sha256: evaluate once, change one file, evaluate again
    generator = torch.Generator().manual_seed(0)
    images = data.ImageSet(torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=generator),
                           torch.randint(0, 10, (12,), generator=generator), torch.arange(12), list("0123456789"))
    grid = [("contrast", 1.0), ("gaussian", 0.08)]
    out = tmp_path / "res" / "accuracy.parquet"
    evaluation.evaluate_cached(report.load_networks(first.catalog), images, grid, out=out, top5=False, progress=False,
                               weights=report.weight_hashes(first.catalog))
    export(network(42).state_dict(), folder / "b.safetensors", "safetensors")
    changed = import_population(folder, "resnet20", "mine", **folders(tmp_path))
    assert changed.written == ["b"] and changed.unchanged == ["a", "c", "d"]
    shas = dict(zip(first.catalog["net_id"], first.catalog["sha256"], strict=True))
    new = report.weight_hashes(changed.catalog)
    assert new["b"] != shas["b"] and {k: v for k, v in new.items() if k != "b"} == {k: shas[k] for k in "acd"}
    networks = {n: Untouchable() for n in "acd"} | {"b": report.load_networks(changed.catalog.iloc[[1]])["b"]}
    table = evaluation.evaluate_cached(networks, images, grid, out=out, top5=False, progress=False, weights=new).table
    assert dict(zip(table["net_id"], table["weights_sha256"], strict=True)) == new


def test_any_torchvision_model_with_its_normalisation(tmp_path):
    arch = "torchvision:shufflenet_v2_x0_5"
    folder = tmp_path / "src"
    folder.mkdir()
    nets = {f"n{i}": network(i, arch, 10) for i in range(2)}
    for name, net in nets.items():
        torch.save(net.state_dict(), folder / f"{name}.pt")
    x = torch.rand(4, 3, 32, 32)
    scaled = import_population(folder, arch, "tv", normalisation="0.5,0.5,0.5/0.25,0.25,0.25",
                               **folders(tmp_path / "scaled"))
    raw = import_population(folder, arch, "tv", normalisation="none", **folders(tmp_path / "raw"))
    for row_scaled, row_raw in zip(scaled.catalog.itertuples(), raw.catalog.itertuples(), strict=True):
        original = nets[row_scaled.net_id]
        model_scaled, _ = checkpoints.load(row_scaled.checkpoint)
        model_raw, _ = checkpoints.load(row_raw.checkpoint)
        with torch.no_grad():
            original.normalise = torch.nn.Identity()  # the bare torchvision network, fed by hand
            assert torch.allclose(model_scaled(x), original((x - 0.5) / 0.25), atol=1e-6)
            assert torch.equal(model_raw(x), original(x))
        assert json.loads(row_raw.config)["normalisation"] == "none"
        # the same weights behind another normalisation are another network: results are cached by this sha256
        assert row_scaled.sha256 != row_raw.sha256
    paths = dict(zip(raw.catalog["net_id"], raw.catalog["checkpoint"], strict=True))
    # the kernel measures and CKA take it (the weights are the originals: the outputs above are equal)
    paper = similarity.pairwise_similarity(paths, "paper", progress=False).matrix
    assert paper.shape == (2, 2) and 0 < paper[0, 1] < 1 and paper[0, 1] == paper[1, 0]
    cka, _ = similarity.cka_matrix(report.load_networks(raw.catalog), x, progress=False)
    assert cka.shape == (2, 2) and np.allclose(np.diag(cka), 1)
    assert len(similarity.null_distribution(arch, "paper", n_networks=2)) == 1  # chapter 4's untrained networks
    with pytest.raises(ValueError, match="coupled supports resnet20, resnet50, resnet50_keras"):
        similarity.pairwise_similarity(paths, "coupled", progress=False)
    a, b = report.load_networks(raw.catalog).values()
    with pytest.raises(ValueError, match="supports resnet20, resnet50, resnet50_keras"):
        transplant.transplant(a, b, models.conv_layers(a)[1][0])
    values = yaml.safe_load(raw.profile.read_text())
    assert values["similarity_methods"] == ["paper", "hungarian"] and values["arch"] == arch
    assert any("coupled alignment and the transplant" in note for note in raw.notes)
    assert any(f"analyse {arch} networks as any others" in note for note in raw.notes)  # no paper accuracy for it
    assert raw.command.endswith("--to 05_paradox")
    assert f"The 2 {arch} networks" in origin_sentence(raw.catalog)
    assert "inputs not normalised ([0, 1] pixels)" in origin_sentence(raw.catalog)
    assert "inputs normalised with mean 0.5, 0.5, 0.5 and std 0.25, 0.25, 0.25" in origin_sentence(scaled.catalog)


def test_command_line(exported, tmp_path, capsys):
    folder, _ = exported
    args = ["import", str(folder), "--arch", "resnet20", "--profile", "mine", "--checkpoint-dir", str(tmp_path / "ck"),
            "--results-dir", str(tmp_path / "res")]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^imported  c  ← c\.ckpt$", printed, re.M)
    assert f"next: python -m paradox_utils run --profile {tmp_path / 'ck' / 'profile.yaml'}" in printed
    assert cli.main(args) == 0 and re.search(r"^unchanged c  ← c\.ckpt$", capsys.readouterr().out, re.M)
    torch.save(network(0), folder / "whole.pt")
    assert cli.main(args) == 1
    assert re.search(r"^error: whole\.pt holds pickled Python objects.*model\.state_dict\(\)", capsys.readouterr().err)


def test_training_chapters_refuse_an_imported_population(exported, tmp_path, capsys):
    """Chapters 1–2 train a population; an imported one was trained elsewhere. ``run`` from chapter 1
    or 2, and chapter 1 under papermill with the profile, stop before any work in one sentence that
    says to run from chapter 3; a folder of networks trained here, or chapters 3–6, pass."""
    folder, _ = exported
    result = import_population(folder, "resnet20", "mine", **folders(tmp_path))
    sentence = (rf"The networks in {re.escape(str((tmp_path / 'ck').resolve()))} were imported \(python -m "
                r"paradox_utils import\), so chapters 1–2 \(training\) do not apply to them: run chapters 3–6 with "
                rf"`python -m paradox_utils run --profile {re.escape(str(result.profile))} --from 03_evaluate`\.")
    before = _tree_state(tmp_path)
    for start in (None, "02_finetune"):
        with pytest.raises(ValueError, match=f"^{sentence}$"):
            pipeline.run(str(result.profile), start=start, output_dir=tmp_path / "chapters", progress=False)
    assert cli.main(["run", "--profile", str(result.profile), "--output-dir", str(tmp_path / "chapters")]) == 1
    assert re.fullmatch(f"error: {sentence}\n", capsys.readouterr().err)
    chapter_one = {**profiles.chapter_parameters()["01_train"], "profile": str(result.profile)}  # papermill -p profile
    with pytest.raises(ValueError, match=f"^{sentence}$"):
        preamble.profile_parameters("01_train", chapter_one)
    assert _tree_state(tmp_path) == before and not (tmp_path / "chapters").exists()  # nothing trained or written
    values = {"profile": "mine", "checkpoint_dir": str(tmp_path / "ck")}
    preamble.check_training_applies(profiles.CHAPTERS[2:], values, "mine")  # what the sentence says to run
    trained = tmp_path / "trained"
    checkpoints.save(trained / "b000", network(0), "resnet20", 10, config=training.TrainConfig().to_dict())
    preamble.check_training_applies(profiles.TRAINING_CHAPTERS, {**values, "checkpoint_dir": str(trained)}, "mine")


def executed_chapter(folder, chapter: str, profile: str, imported: bool | None = None) -> None:
    """A stand-in for an executed chapter, stamped as ``run`` stamps it (``imported``: whether its
    networks were imported; None: a stamp without the field)."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {chapter} ({profile})")])
    notebook.metadata["paradox"] = {"profile": profile, "commit": "0123456789ab",
                                    **({} if imported is None else {"imported": imported})}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / f"{chapter}.ipynb")


def test_an_imported_populations_book_is_chapters_3_to_6(tmp_path):
    """The book of an imported population is the chapters that ran on it: never 1–2 (those in the
    folder were left by another profile's run), 6 only where it ran with the same profile; the
    table of contents is the book's own less the rest, written under _build/."""
    chapters = tmp_path / "chapters"
    for chapter in profiles.CHAPTERS:  # a quick run's book, then chapters 3–6 on imported networks
        executed_chapter(chapters, chapter, "quick", imported=False if chapter == "03_evaluate" else None)
    assert book_builder.book_chapters(chapters) == profiles.CHAPTERS
    for chapter in profiles.CHAPTERS[2:]:
        executed_chapter(chapters, chapter, "mine", imported=True if chapter == "03_evaluate" else None)
    assert book_builder.book_chapters(chapters) == profiles.CHAPTERS[2:]
    executed_chapter(chapters, "06_transplant", "quick")  # chapter 6 left by the quick run (no lineage here)
    assert book_builder.book_chapters(chapters) == profiles.CHAPTERS[2:5]
    (chapters / "04_similarity.ipynb").unlink()
    with pytest.raises(ValueError, match=r"^Chapters not executed yet for the imported population mine: "
                                         r"04_similarity \(run `python -m paradox_utils run --profile mine --from "
                                         r"03_evaluate` first\)\.$"):
        book_builder.book_chapters(chapters)
    executed_chapter(chapters, "03_evaluate", "quick", imported=False)
    (chapters / "01_train.ipynb").unlink()
    with pytest.raises(ValueError, match=r"^Chapters not executed yet: 01_train, 04_similarity"):
        book_builder.book_chapters(chapters)
    tracked = (ROOT / "book" / "_toc.yml").read_bytes()
    toc = book_builder.book_toc(ROOT / "book", profiles.CHAPTERS[2:], tmp_path / "_build")
    assert toc == tmp_path / "_build" / "_toc.yml" and (ROOT / "book" / "_toc.yml").read_bytes() == tracked
    entries = yaml.safe_load(toc.read_text())
    assert entries["root"] == "intro"
    assert [e["file"] for e in entries["chapters"]] == [*(f"chapters/{c}" for c in profiles.CHAPTERS[2:]), "methods"]


# ----------------------------------------------------------------------------- against native training

TINY = dict(epochs=1, train_per_class=10, val_per_class=5, batch_size=32)
EXPORTED_AS = {"b000": ("b000.pt", "state_dict"), "b001": ("b001.safetensors", "safetensors"),
               "b000-ft-gamma": ("b000-ft-gamma.ckpt", "lightning")}
CHAPTER_SETTINGS = {"eval_per_class": 10, "cka_probe_images": 64, "chance_networks": 15, "mantel_permutations": 99,
                    "bootstrap_resamples": 50, "transplant_eval_per_class": 4, "transplant_sweep": False,
                    "bn_recalibration_images": 64}  # the tiny profile's, the sweep aside
# cells compared with the native networks (all 37 cost minutes on a busy 2-core machine): the identity, a noise
# with its shared draws, a colour change
SOME_CELLS = [("contrast", 1.0), ("gaussian", 0.05), ("illuminant", 0.25)]


@pytest.fixture(scope="module")
def native(tmp_path_factory, cifar_source):
    """Three tiny ResNet20 trained here (two bases and an offspring), their checkpoints, and
    their weights exported the three ways users export them, with a lineage CSV."""
    root = tmp_path_factory.mktemp("native")
    training.train(training.TrainConfig(**TINY), root / "native" / "b000", progress=False, net_id="b000")
    training.train(training.TrainConfig(**TINY, seed=1), root / "native" / "b001", progress=False, net_id="b001")
    training.train(training.TrainConfig(**TINY, manipulation="gamma", seed=10_000), root / "native" / "b000-ft-gamma",
                   parent=root / "native" / "b000", progress=False)
    native = {n: root / "native" / f"{n}.safetensors" for n in EXPORTED_AS}
    (root / "exported").mkdir()
    for net_id, (name, how) in EXPORTED_AS.items():
        export(checkpoints.load_state(native[net_id])[0], root / "exported" / name, how)
    (root / "lineage.csv").write_text("net_id,parent,label\nb000-ft-gamma,b000,gamma\n")
    return root, native


def imported(root, tmp_path):
    return import_population(root / "exported", "resnet20", "mine", root / "lineage.csv", **folders(tmp_path))


@pytest.mark.slow
def test_imported_networks_measure_as_the_same_networks_trained_here(native, small_test, tmp_path):
    root, paths = native
    catalog = imported(root, tmp_path).catalog
    ids = list(catalog["net_id"])
    assert ids == ["b000", "b001", "b000-ft-gamma"]
    mine = report.load_networks(catalog)
    theirs = {n: checkpoints.load(paths[n])[0] for n in ids}
    columns = ["net_id", "manipulation", "level", "accuracy", "top5", "n_images"]
    a = evaluation.evaluate(mine, small_test, SOME_CELLS, progress=False).table[columns]
    b = evaluation.evaluate(theirs, small_test, SOME_CELLS, progress=False).table[columns]
    pd.testing.assert_frame_equal(a, b)
    for method in similarity.METHODS:
        assert np.array_equal(similarity.pairwise_similarity(dict(zip(ids, catalog["checkpoint"], strict=True)),
                                                             method, progress=False).matrix,
                              similarity.pairwise_similarity([paths[n] for n in ids], method, progress=False).matrix)
    probe = report.probe_images("cifar10", 64)
    assert np.array_equal(similarity.cka_matrix(mine, probe, progress=False)[0],
                          similarity.cka_matrix(theirs, probe, progress=False)[0])


@pytest.mark.slow
def test_chapters_3_to_6_run_on_an_imported_population_and_make_its_book(native, tmp_path):
    root, paths = native
    result = imported(root, tmp_path)
    profile = result.profile
    profile.write_text(profile.read_text() + yaml.safe_dump(CHAPTER_SETTINGS))  # kept by any later import
    assert imported(root, tmp_path).written == []
    book = tmp_path / "book"  # a copy of the book's sources, as tests/test_pipeline.py's tiny_book makes
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    for chapter in profiles.TRAINING_CHAPTERS:  # left in the folder by an earlier run of another profile
        executed_chapter(book / "chapters", chapter, "quick")
    executed = pipeline.run(str(profile), start="03_evaluate", output_dir=book / "chapters", progress=False)
    assert [p.stem for p in executed] == list(profiles.CHAPTERS[2:])
    assert all(not book_builder.notebook_errors(p) for p in executed)
    # chapter 3's table is what the same networks trained here score on the same images and noise
    ids = list(result.catalog["net_id"])
    images = report.evaluation_set("cifar10", CHAPTER_SETTINGS["eval_per_class"])
    native_table = evaluation.evaluate({n: checkpoints.load(paths[n])[0] for n in ids}, images, SOME_CELLS, seed=0,
                                       progress=False).table
    columns = ["net_id", "manipulation", "level", "accuracy", "n_images"]
    chapter_table = pd.read_parquet(tmp_path / "res" / "accuracy.parquet")
    assert len(chapter_table) == 37 * len(ids)
    key = ["net_id", "manipulation", "level"]
    chapter_table = chapter_table.merge(native_table[key], on=key)  # the cells computed natively
    pd.testing.assert_frame_equal(chapter_table[columns].sort_values(key).reset_index(drop=True),
                                  native_table[columns].sort_values(key).reset_index(drop=True))
    # chapter 4's kernel similarity is the native networks'
    matrices = report.load_matrices(tmp_path / "res" / "similarity.parquet", result.catalog)
    for method in similarity.METHODS:
        expected = similarity.pairwise_similarity([paths[n] for n in ids], method, progress=False).matrix
        assert np.allclose(matrices[method].loc[ids, ids].to_numpy(), expected, rtol=0, atol=1e-12), method
    # the introduction's sentence, glued by chapter 3, says where the networks came from
    glued = provenance.glued_text(book / "chapters" / "03_evaluate.ipynb", "origin")
    assert glued and f"imported from {(root / 'exported').resolve()}" in glued
    assert "2 base networks and 1 offspring" in glued
    transplanted = pd.read_parquet(tmp_path / "res" / "transplant.parquet")
    assert {"parent", "child"} <= set(transplanted["variant"])
    # the book: chapters 3–6 and the introduction saying where the networks came from; never chapters 1–2
    site = book_builder.build_book(book).parent
    intro = html.unescape((site / "intro.html").read_text())
    assert f"The 3 resnet20 networks analysed here were imported from {(root / 'exported').resolve()} (3 weight " \
           "files; 2 base networks and 1 offspring, by the lineage given with them; inputs normalised with " \
           "CIFAR-10's mean and std): they were trained elsewhere, not by chapters 1 and 2." in intro
    assert sorted(p.stem for p in (site / "chapters").glob("*.html")) == list(profiles.CHAPTERS[2:])
    toc = yaml.safe_load((book / "_build" / "_toc.yml").read_text())
    assert [e["file"] for e in toc["chapters"]] == [*(f"chapters/{c}" for c in profiles.CHAPTERS[2:]), "methods"]
    assert (book / "_toc.yml").read_bytes() == (ROOT / "book" / "_toc.yml").read_bytes()  # the sources untouched
    for page in site.rglob("*.html"):  # no link to them, in the introduction's list or any page's navigation
        assert not re.search(r'href="[^"]*0[12]_(train|finetune)', page.read_text()), page
    for chapter in profiles.CHAPTERS[2:]:  # listed by the introduction, from the table of contents
        assert f'href="chapters/{chapter}.html"' in intro, chapter
    assert "Made with the <code>mine</code> profile" in intro  # the footer names no other profile's run
