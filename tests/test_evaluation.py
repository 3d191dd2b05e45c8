import copy

import numpy as np
import pandas as pd
import pytest
import torch

from paradox_utils import checkpoints, data, distortions, evaluation, models
from paradox_utils.correctness import correctness_path


class Counting(torch.nn.Module):
    """Wraps a network and counts the images it saw (and whether autocast was on)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen, self.autocast = net, 0, set()

    def forward(self, x):
        self.seen += len(x)
        self.autocast.add(torch.is_autocast_enabled(x.device.type))
        return self.net(x)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    out = {}
    for i in range(2):
        net = models.build("resnet20")
        for m in net.modules():  # spread the BN statistics so predictions vary
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2)
                m.running_mean.normal_(0, 0.1)
        out[f"n{i}"] = net.eval()
    return out


GRID = [("contrast", 0.3), ("contrast", 1.0), ("gaussian", 0.05), ("blur", 1.0), ("salt_pepper", 0.1)]


@pytest.mark.slow
def test_engine_equals_literal_loop(nets, small_test):
    table = evaluation.evaluate(nets, small_test, grid=GRID, batch_size=33, progress=False).table
    assert list(table.columns) == evaluation.COLUMNS and len(table) == 2 * len(GRID)
    x = small_test.images.float() / 255
    for (name, level) in GRID:
        distorted = distortions.apply(x, name, level, seed=0, index=small_test.index)
        for key, net in nets.items():
            with torch.no_grad():
                expected = (net(distorted).argmax(1) == small_test.labels).double().mean().item()
            got = table.query("net_id == @key and manipulation == @name and level == @level")["accuracy"].item()
            assert got == pytest.approx(expected), (key, name, level)


def _keys(nets):
    return {k: checkpoints.state_sha256(v) for k, v in nets.items()}


@pytest.mark.slow
def test_resumes_only_missing_cells(nets, small_test, tmp_path):
    out = tmp_path / "acc.parquet"
    evaluation.evaluate_cached(nets, small_test, grid=GRID[:2], out=out, progress=False)
    counted = {k: Counting(v) for k, v in nets.items()}
    keys = _keys(nets)  # the wrapped networks are the same weights
    table = evaluation.evaluate_cached(counted, small_test, grid=GRID, out=out, progress=False, weights=keys).table
    assert len(table) == 2 * len(GRID)
    assert all(c.seen == 3 * len(small_test) for c in counted.values())  # 3 new cells only
    counted["n9"] = Counting(nets["n0"])
    keys["n9"] = keys["n0"]
    evaluation.evaluate_cached(counted, small_test, grid=GRID, out=out, progress=False, weights=keys)
    assert counted["n9"].seen == len(GRID) * len(small_test) and counted["n0"].seen == 3 * len(small_test)
    assert len(pd.read_parquet(out)) == 3 * len(GRID)


@pytest.mark.slow
def test_resumed_evaluation_is_the_fresh_one(nets, small_test, tmp_path):
    """evaluate_cached gives evaluate's Evaluation, whether its cells were computed or read back."""
    fresh = evaluation.evaluate(nets, small_test, grid=GRID, batch_size=33, progress=False)
    assert isinstance(fresh, evaluation.Evaluation) and fresh.correctness.ids == list(nets)
    assert fresh.correctness.cells == [(n, float(lv)) for n, lv in GRID]
    wide = fresh.correctness.accuracy()
    assert all(wide.loc[r.net_id, (r.manipulation, r.level)] == r.accuracy for r in fresh.table.itertuples())
    out = tmp_path / "acc.parquet"
    evaluation.evaluate_cached({"n1": nets["n1"]}, small_test, grid=GRID[1:3], batch_size=33, out=out,
                               progress=False)
    resumed = evaluation.evaluate_cached(nets, small_test, grid=GRID, batch_size=33, out=out, progress=False)
    again = evaluation.evaluate_cached(nets, small_test, grid=GRID, batch_size=33, out=out, progress=False)
    for other in (resumed, again):
        key = ["net_id", "manipulation", "level"]
        pd.testing.assert_frame_equal(other.table.sort_values(key).reset_index(drop=True),
                                      fresh.table.sort_values(key).reset_index(drop=True), check_exact=True)
        assert other.correctness.ids == fresh.correctness.ids and other.correctness.cells == fresh.correctness.cells
        assert other.correctness.bits.tobytes() == fresh.correctness.bits.tobytes()


def test_vi_is_mean_of_manipulation_means():
    rows = [("a", "contrast", 0.5, 0.2), ("a", "contrast", 1.0, 0.6), ("a", "gamma", 1.0, 0.9),
            ("b", "contrast", 0.5, 0.1), ("b", "contrast", 1.0, 0.1), ("b", "gamma", 1.0, 0.4)]
    table = pd.DataFrame(rows, columns=["net_id", "manipulation", "level", "accuracy"])
    vi = evaluation.visual_intelligence(table)
    assert vi["a"] == pytest.approx((0.4 + 0.9) / 2) and vi["b"] == pytest.approx(0.25)
    assert evaluation.clean_accuracy(table)["a"] == 0.6
    vectors = evaluation.accuracy_vectors(table)
    assert vectors.shape == (2, 3) and list(vectors.columns[0]) == ["contrast", 0.5]


def test_chapter3_table_names_the_images_each_vi_was_measured_on():
    rows = [("a", "contrast", 0.5, 0.2), ("a", "contrast", 1.0, 0.6), ("a", "gamma", 1.0, 0.9),
            ("b", "contrast", 0.5, 0.1), ("b", "contrast", 1.0, 0.1), ("b", "gamma", 1.0, 0.4)]
    table = pd.DataFrame(rows, columns=["net_id", "manipulation", "level", "accuracy"]).assign(n_images=300)
    intervals = pd.DataFrame({"vi": [0.65, 0.25], "low": [0.6, 0.2], "high": [0.7, 0.3], "se": 0.01},
                             index=pd.Index(["a", "b"], name="net_id"))
    out = evaluation.network_table(table, intervals)
    assert list(out.columns) == ["contrast", "gamma", "clean", "vi", "vi_low", "vi_high", "test_images"]
    assert out.loc["a"].to_dict() == pytest.approx({"contrast": 0.4, "gamma": 0.9, "clean": 0.6, "vi": 0.65,
                                                    "vi_low": 0.6, "vi_high": 0.7, "test_images": 300})
    assert evaluation.images_per_cell(table) == 300
    assert evaluation.hardest_manipulation(table) == "contrast"
    with pytest.raises(ValueError, match=r"different numbers of images \(\[30, 300\]\)"):
        evaluation.images_per_cell(table.assign(n_images=[300] * 5 + [30]))


def test_bad_grid_fails_before_work(nets, small_test):
    with pytest.raises(ValueError, match="Unknown manipulation"):
        evaluation.evaluate(nets, small_test, grid=[("contrast", 1.0), ("sepia", 1.0)], progress=False)


def test_imagenet_top1_top5(imagenet_root):
    torch.manual_seed(0)
    val = data.load_imagenet("val", source=imagenet_root)
    net = models.build("resnet50").eval()
    table = evaluation.evaluate({"r50": net}, val, grid=[("contrast", 1.0)], batch_size=10, progress=False).table
    assert table["n_images"].item() == 20
    assert 0 <= table["accuracy"].item() <= table["top5"].item() <= 1
    assert not np.isnan(table["top5"].item())


@pytest.mark.slow
def test_retrained_network_is_evaluated_again_never_reused(nets, small_test, tmp_path):
    """Same id, new weights: every cell of that network is recomputed and its old rows
    replaced; the other network is reused."""
    out = tmp_path / "acc.parquet"
    evaluation.evaluate_cached(nets, small_test, grid=GRID, out=out, progress=False)
    retrained = copy.deepcopy(nets["n0"])
    with torch.no_grad():
        retrained.fc.bias.add_(torch.linspace(-3, 3, 10))  # moves the predictions
    counted = {"n0": Counting(retrained), "n1": Counting(nets["n1"])}
    keys = {"n0": checkpoints.state_sha256(retrained), "n1": checkpoints.state_sha256(nets["n1"])}
    table = evaluation.evaluate_cached(counted, small_test, grid=GRID, out=out, progress=False, weights=keys).table
    assert counted["n0"].seen == len(GRID) * len(small_test) and counted["n1"].seen == 0
    fresh = evaluation.evaluate({"n0": retrained}, small_test, grid=GRID, progress=False).table
    assert table.query("net_id == 'n0'")["accuracy"].tolist() == fresh["accuracy"].tolist()
    stored = pd.read_parquet(out)
    assert len(stored) == 2 * len(GRID) and set(stored.query("net_id == 'n0'")["weights_sha256"]) == {keys["n0"]}


def test_another_evaluation_set_or_noise_seed_recomputes(nets, small_test, cifar_test, tmp_path):
    out = tmp_path / "acc.parquet"
    grid = GRID[2:3]  # one noise cell
    evaluation.evaluate_cached(nets, small_test, grid=grid, out=out, progress=False)
    keys = _keys(nets)
    for dataset, seed in [(small_test, 1), (data.stratified_subset(cifar_test, 10, seed=5), 1)]:
        counted = {k: Counting(v) for k, v in nets.items()}
        table = evaluation.evaluate_cached(counted, dataset, grid=grid, seed=seed, out=out, progress=False,
                                           weights=keys).table
        assert all(c.seen == len(dataset) for c in counted.values())
        assert set(table["noise_seed"]) == {seed} and set(table["eval_set"]) == {dataset.fingerprint()[:24]}
    counted = {k: Counting(v) for k, v in nets.items()}
    evaluation.evaluate_cached(counted, dataset, grid=grid, seed=1, out=out, progress=False, weights=keys)
    assert all(c.seen == 0 for c in counted.values())  # the same inputs again: reused


def test_unreadable_accuracy_table_is_recomputed_with_a_warning(nets, small_test, tmp_path):
    out = tmp_path / "acc.parquet"
    out.write_bytes(b"not parquet")
    with pytest.warns(RuntimeWarning, match="accuracy table .* unreadable.*rebuilt"):
        table = evaluation.evaluate_cached(nets, small_test, grid=GRID[:1], out=out, progress=False).table
    assert len(table) == 2 and len(pd.read_parquet(out)) == 2


def test_grid_cells_are_the_papers_and_refuse_unknown_names():
    assert distortions.grid_cells() == distortions.PAPER_GRID and len(distortions.PAPER_GRID) == 37
    assert distortions.grid_cells(["blur"]) == [("blur", 0.0), ("blur", 0.5), ("blur", 1.0), ("blur", 1.5)]
    with pytest.raises(ValueError, match="Unknown manipulation 'sepia'"):
        distortions.grid_cells(["sepia"])


def test_an_empty_batch_no_network_or_no_cell_is_one_sentence(nets, small_test):
    with pytest.raises(ValueError, match="empty batch"):
        distortions.apply(torch.zeros(0, 3, 32, 32), "gaussian", 0.1)
    with pytest.raises(ValueError, match="no networks"):
        evaluation.evaluate({}, small_test, grid=GRID, progress=False)
    with pytest.raises(ValueError, match="no cells"):
        evaluation.evaluate(nets, small_test, grid=[], progress=False)


def test_imagenet_evaluation_set_and_probes_honour_per_class_and_seed(imagenet_root, monkeypatch):
    from paradox_utils import report

    monkeypatch.setenv("PARADOX_IMAGENET", imagenet_root)
    whole = report.evaluation_set("imagenet", None)
    one = report.evaluation_set("imagenet", 1, seed=0)
    assert len(one) == len(whole.labels.unique()) < len(whole) and sorted(one.labels.tolist()) == one.labels.tolist()
    assert one.fingerprint() != whole.fingerprint()
    with pytest.raises(ValueError, match="fewer than n_per_class=5"):
        report.evaluation_set("imagenet", 5)
    a, b, c = (report.probe_images("imagenet", 4, seed=s) for s in (1, 1, 2))
    assert a.shape == (4, 3, 224, 224) and torch.equal(a, b) and not torch.equal(a, c)
    first_four = torch.stack([whole[i][0] for i in range(4)]).float() / 255
    assert not torch.equal(a, first_four)  # a seeded draw, not the first images in class order


@pytest.mark.slow
def test_correctness_bits_agree_with_the_accuracy_table_and_resume_alike(nets, small_test, tmp_path):
    from paradox_utils.correctness import Correctness, correctness_path, pack, unpack

    out = tmp_path / "acc.parquet"
    table = evaluation.evaluate_cached(nets, small_test, grid=GRID, out=out, progress=False).table
    stored = pd.read_parquet(correctness_path(out))
    assert len(stored) == len(table) and set(stored["n_images"]) == {len(small_test)}
    bits = Correctness.from_table(stored)
    wide = bits.accuracy()
    for row in table.itertuples():  # exactly the accuracy table, cell by cell
        assert wide.loc[row.net_id, (row.manipulation, row.level)] == row.accuracy
    x = small_test.images.float() / 255  # and the literal per-image answers
    distorted = distortions.apply(x, "gaussian", 0.05, seed=0, index=small_test.index)
    with torch.no_grad():
        literal = (nets["n1"](distorted).argmax(1) == small_test.labels).numpy()
    got = bits.select(ids=["n1"], cells=[("gaussian", 0.05)]).boolean()[0, 0]
    assert np.array_equal(got, literal) and np.array_equal(unpack(pack(literal), len(literal)), literal)
    correctness_path(out).unlink()  # bits missing: those cells are evaluated again, nothing else changes
    counted = {k: Counting(v) for k, v in nets.items()}
    again = evaluation.evaluate_cached(counted, small_test, grid=GRID, out=out, progress=False,
                                       weights=_keys(nets)).table
    assert all(c.seen == len(GRID) * len(small_test) for c in counted.values())
    assert again["accuracy"].tolist() == table["accuracy"].tolist()
    assert Correctness.from_table(pd.read_parquet(correctness_path(out))).bits.tobytes() == bits.bits.tobytes()


def test_progress_counts_each_cell_as_it_happens(nets, small_test, tmp_path, capsys):
    """Each cell's line names the cells done before it: a batch log once read "2/37" for
    four cells in a row. Cells already stored count too."""
    out = tmp_path / "acc.parquet"
    evaluation.evaluate_cached(nets, small_test, grid=GRID[:1], out=out, progress=False)
    capsys.readouterr()
    evaluation.evaluate_cached(nets, small_test, grid=GRID, out=out, progress=True)
    states = [s.strip() for s in capsys.readouterr().err.replace("\r", "\n").splitlines() if "cells:" in s]
    for k, (name, level) in enumerate(GRID[1:], 1):
        assert any(f"{k}/{len(GRID)}" in s and f"{name}={level} ×" in s for s in states), (k, states)
    assert any(f"{len(GRID)}/{len(GRID)}" in s for s in states), states


def test_bfloat16_engine_equals_literal_autocast_loop_and_is_keyed_apart(nets, small_test, tmp_path):
    """precision="bfloat16" runs each forward under torch.autocast, batch by batch as the literal
    loop here does; its rows are keyed by the precision, so float32 rows are never reused for it."""
    out = tmp_path / "acc.parquet"
    plain = evaluation.evaluate_cached(nets, small_test, grid=GRID[:2], batch_size=33, out=out, progress=False).table
    counted = {k: Counting(v) for k, v in nets.items()}
    table = evaluation.evaluate_cached(counted, small_test, grid=GRID[:2], batch_size=33, out=out, progress=False,
                                       weights=_keys(nets), precision="bfloat16").table
    assert all(c.seen == 2 * len(small_test) for c in counted.values())  # nothing reused from float32
    assert all(c.autocast == {True} for c in counted.values())
    assert set(table["precision"]) == {"bfloat16"} and set(plain["precision"]) == {"float32"}
    for name, level in GRID[:2]:
        for key, net in nets.items():
            hits = 0
            for images, labels, index in small_test.batches(33):
                x = distortions.apply(images.float() / 255, name, level, seed=0, index=index)
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                    hits += int((net(x.contiguous(memory_format=torch.channels_last)).float().argmax(1)
                                 == labels).sum())
            got = table.query("net_id == @key and manipulation == @name and level == @level")["accuracy"].item()
            assert got == pytest.approx(hits / len(small_test)), (key, name, level)
    with pytest.raises(ValueError, match="precision 'float16' is not one of"):
        evaluation.evaluate(nets, small_test, grid=GRID[:1], precision="float16", progress=False)


def test_a_table_from_before_the_precision_column_is_reused_as_float32(nets, small_test, tmp_path):
    """Every row written before rows named their precision was float32: such a table is read
    as float32 (not rebuilt), and a bfloat16 run still recomputes."""
    out = tmp_path / "acc.parquet"
    evaluation.evaluate_cached(nets, small_test, grid=GRID[:2], out=out, progress=False)
    for path in (out, correctness_path(out)):
        pd.read_parquet(path).drop(columns="precision").to_parquet(path)  # the older format
    counted = {k: Counting(v) for k, v in nets.items()}
    table = evaluation.evaluate_cached(counted, small_test, grid=GRID[:2], out=out, progress=False,
                                       weights=_keys(nets)).table
    assert all(c.seen == 0 for c in counted.values()) and set(table["precision"]) == {"float32"}
    evaluation.evaluate_cached(counted, small_test, grid=GRID[:2], out=out, progress=False, weights=_keys(nets),
                               precision="bfloat16")
    assert all(c.seen == 2 * len(small_test) for c in counted.values())
