"""Shared fixtures: the data root (real data in ../shared/data) and a quiet Keras."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# JAX's compiled programs are kept between the test processes (shared.runtime turns the cache
# on under JAX; many tests train the same smoke models), in a folder of the tests' own.
os.environ.setdefault("KTS_JAX_CACHE", str(Path(tempfile.gettempdir()) / f"kts-test-jax-cache-{os.getuid()}"))
if os.environ.get("KERAS_BACKEND") == "jax":
    from shared.runtime import enable_jax_compile_cache

    enable_jax_compile_cache()


@pytest.fixture(scope="session")
def data_root():
    from shared.runtime import default_data_root

    root = default_data_root()
    if not root.is_dir():
        pytest.skip(f"data root {root} not found (set KTS_DATA)")
    return root
