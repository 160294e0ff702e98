"""Shared pytest fixtures for lems."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("KERAS_BACKEND", "jax")

SHARED_DATA = Path(os.environ.get("LEMS_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real benchmark data (../shared/data); skips the test when absent."""
    if not (SHARED_DATA / "crypto_1h").is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests unless a GPU is visible to the active backend."""
    from lems.utils import gpu_available

    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no GPU present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
