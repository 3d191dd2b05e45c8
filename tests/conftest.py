"""Shared fixtures. Data comes from PARADOX_CIFAR10 / PARADOX_IMAGENET (CI points them at the
shared copies). A test that needs them carries the ``data`` marker (given automatically to
any test using a data fixture); without the setting it is skipped, or fails under CI=true.
Decoded caches and anything else the package writes under ``data_dir()`` go to a pytest
temporary folder for the session, Hypothesis's storage to the system's temporary folder: tests
never write into the repository."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

from paradox_utils import data, runtime

# Hypothesis keeps its examples and caches in the system's temporary folder, not in .hypothesis/ of the
# working folder (the repository); set before any test module, whose strategies it scans, is imported.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "paradox-hypothesis"))

DATA_FIXTURES = {"cifar_source", "cifar_test", "cifar_train", "small_test", "imagenet_root"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_env(name: str, what: str) -> Path:
    """The path in ``$name``; skip (fail under CI=true) with one sentence when it is unset."""
    value = os.environ.get(name)
    if not value:
        reason = f"{name} is not set: point it at {what}."
        if in_ci():
            pytest.fail(f"{reason} (CI=true: data tests must run)", pytrace=False)
        pytest.skip(reason)
    return Path(value)


def pytest_collection_modifyitems(items):
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(min(2, runtime.available_cores()))


@pytest.fixture(autouse=True, scope="session")
def _data_dir(tmp_path_factory):
    """$PARADOX_DATA_DIR -> a session temporary folder (restored afterwards); in os.environ,
    so subprocesses started by tests inherit it too."""
    folder = tmp_path_factory.mktemp("paradox-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PARADOX_DATA_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def cifar_source(_data_dir):
    return require_env("PARADOX_CIFAR10", "CIFAR-10 (a zip, an image-folder tree or cifar-10-batches-py)")


@pytest.fixture(scope="session")
def cifar_test(cifar_source):
    return data.load_cifar10("test", source=cifar_source)


@pytest.fixture(scope="session")
def cifar_train(cifar_source):
    return data.load_cifar10("train", source=cifar_source)


@pytest.fixture(scope="session")
def small_test(cifar_test):
    return data.stratified_subset(cifar_test, 10, seed=0)


@pytest.fixture(scope="session")
def imagenet_root(_data_dir):
    return str(require_env("PARADOX_IMAGENET", "a folder holding val/<class>/*.jpg"))


@pytest.fixture(scope="session")
def chromium_executable():
    """Session-scoped, so it is checked before module fixtures such as the built book:
    skipped without chromium, a failure under CI=true (see tests/browser.py)."""
    from .browser import require_chromium

    return require_chromium()
