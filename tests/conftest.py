"""Shared fixtures. Data comes from PARADOX_CIFAR10 / PARADOX_IMAGENET (CI points them
at the shared copies); decoded caches live in data/cache and are reused across runs."""

from __future__ import annotations

import os

import pytest
import torch

from paradox_utils import data


@pytest.fixture(autouse=True, scope="session")
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def cifar_test():
    return data.load_cifar10("test")


@pytest.fixture(scope="session")
def cifar_train():
    return data.load_cifar10("train")


@pytest.fixture(scope="session")
def small_test(cifar_test):
    return data.stratified_subset(cifar_test, 10, seed=0)


@pytest.fixture(scope="session")
def imagenet_root():
    root = os.environ.get("PARADOX_IMAGENET")
    if not root:
        pytest.fail("PARADOX_IMAGENET is not set: point it at a folder holding val/<class>/*.jpg.")
    return root
