"""Shared fixtures: the data root (real data in ../shared/data) and a quiet Keras."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_root():
    from shared.runtime import default_data_root

    root = default_data_root()
    if not root.is_dir():
        pytest.skip(f"data root {root} not found (set KTS_DATA)")
    return root
