import os

import pytest
import torch

from paradox_utils import runtime


@pytest.fixture
def torch_threads():
    """configure() sets a process-wide setting: give the other tests theirs back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_available_cores_is_the_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # taskset -c 0,1
    assert runtime.available_cores() == 2
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows: no affinity to read
    assert runtime.available_cores() == 64


@pytest.mark.parametrize(("omp", "want"), [("1", 1), (" 3 ", 3), ("2,1", 2), ("0", None), ("four", None),
                                           ("", None)])
def test_configure_follows_omp_num_threads_when_it_is_a_positive_integer(monkeypatch, torch_threads, omp, want):
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    want = want or runtime.available_cores()
    assert runtime.default_threads() == want
    assert runtime.configure()["threads"] == want == torch.get_num_threads()


def test_configure_with_threads_given_ignores_the_environment(monkeypatch, torch_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert runtime.configure(threads=2)["threads"] == 2 == torch.get_num_threads()
