"""Progress in a chapter: bars that become plain lines in a batch run, the driver's Follower
that prints them, and the estimate of the time left when jobs run side by side."""

import time

import pytest

from paradox_utils import progress


def test_batch_bars_become_lines_a_follower_prints(tmp_path, monkeypatch):
    """In a batch run a bar writes plain lines to PARADOX_PROGRESS (one per update when asked,
    carriage returns included), and the driver's Follower hands each line over once, as it comes."""
    log = tmp_path / "progress.log"
    monkeypatch.setenv("PARADOX_BATCH", "1")
    monkeypatch.setenv("PARADOX_PROGRESS", str(log))
    seen: list[str] = []
    with progress.Follower(log, seen.append, interval=0.05):
        bar = progress.tqdm(total=3, desc="networks", mininterval=0)
        for k, net in enumerate(("b000", "b001", "b002"), 1):
            bar.set_postfix_str(f"{net}: 1 epoch", refresh=False)
            bar.update(1)
            waited = time.monotonic()  # each line shows now, not when the next update comes
            while not any(f"networks: {k}/3" in line for line in seen) and time.monotonic() - waited < 5:
                time.sleep(0.01)
            assert any(f"networks: {k}/3" in line for line in seen), seen
        bar.close()
        quiet = progress.tqdm(range(5), desc="cells", disable=True)  # a caller's disable wins
        list(quiet)
    assert [line.split(" [")[0] for line in seen] == ["networks: 0/3 (0 %)", "networks: 1/3 (33 %)",
                                                       "networks: 2/3 (67 %)", "networks: 3/3 (100 %)"]
    assert seen[-1].endswith(", b002: 1 epoch]")  # and no line of the disabled bar
    monkeypatch.delenv("PARADOX_PROGRESS")
    assert progress.tqdm(total=1).disable  # batch without a follower: silent
    assert progress.elapsed(48) == "48 s" and progress.elapsed(723) == "12 min 3 s" and progress.elapsed(7500) == \
        "2 h 05 min"


def test_the_chapter_eta_counts_jobs_running_side_by_side(tmp_path, monkeypatch):
    """Six 30-s jobs on two slots have 60 s left when the first ends, where tqdm's
    elapsed × left ÷ done says 150 s; one slot is a serial queue's plain estimate; a slot
    that joins is used; the last job's line gives no estimate, and the bar leaves tqdm's out."""
    two = progress.Makespan(6, slots=2, now=0.0)
    assert [two.finished(2, now=t) for t in (30.0, 30.0, 60.0, 60.0, 90.0, 90.0)] == \
        pytest.approx([60.0, 60.0, 30.0, 30.0, 0.0, 0.0])
    one = progress.Makespan(3, slots=1, now=0.0)
    assert [one.finished(1, now=t) for t in (10.0, 25.0, 40.0)] == pytest.approx([20.0, 12.5, 0.0])  # the mean so far
    joined = progress.Makespan(4, slots=1, now=0.0)
    assert joined.finished(2, now=10.0) == pytest.approx(20.0)  # three left on two slots, not thirty on one
    log = tmp_path / "progress.log"
    monkeypatch.setenv("PARADOX_BATCH", "1")
    monkeypatch.setenv("PARADOX_PROGRESS", str(log))
    bar = progress.tqdm(total=2, desc="networks", mininterval=0, own_eta=True)
    bar.set_postfix_str("b000: 1 epoch, 30 s; about 1 min 0 s left", refresh=False)
    bar.update(1)
    bar.close()
    assert log.read_text().splitlines()[-1] == "networks: 1/2 (50 %) [00:00, b000: 1 epoch, 30 s; about 1 min 0 s left]"
