"""JAX's persistent compilation cache: on by default under JAX (a process reuses what earlier
ones compiled), its folder from KTS_JAX_CACHE, off with KTS_JAX_CACHE=off, a user's own
JAX_COMPILATION_CACHE_DIR kept."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROGRAM = """
from shared import runtime
runtime.select_backend("jax")
import jax, jax.numpy as jnp
print("dir", jax.config.jax_compilation_cache_dir)
print(float(jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.ones(7)).sum()))
"""


def _run(env_extra: dict) -> str:
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k not in ("KTS_JAX_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, env={**env, **env_extra},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compiled_programs_are_kept_in_the_folder_and_off_turns_it_off(tmp_path):
    cache = tmp_path / "cache"
    out = _run({"KTS_JAX_CACHE": str(cache)})
    assert f"dir {cache}" in out
    entries = list(cache.glob("*-cache"))
    assert entries  # the jitted function (and the rest) were written
    assert _run({"KTS_JAX_CACHE": "off"}).startswith("dir None")


def test_a_users_own_jax_cache_folder_is_kept(tmp_path):
    out = _run({"KTS_JAX_CACHE": str(tmp_path / "ours"), "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "theirs")})
    assert f"dir {tmp_path / 'theirs'}" in out and not (tmp_path / "ours").exists()


def test_the_default_folder_is_under_the_user_cache(monkeypatch, tmp_path):
    from shared.runtime import jax_compile_cache_dir

    monkeypatch.delenv("KTS_JAX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jax_compile_cache_dir() == tmp_path / "kts" / "jax"


def test_tidy_removes_empty_entries_and_the_least_recently_used_past_the_limit(tmp_path):
    from shared.runtime import tidy_jax_cache

    for age, (name, size) in enumerate([("old-cache", 400), ("mid-cache", 300), ("new-cache", 200),
                                        ("torn-cache", 0)]):
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + age, 1000 + age))
    tidy_jax_cache(tmp_path, max_bytes=2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid-cache", "new-cache", "old-cache"]
    tidy_jax_cache(tmp_path, max_bytes=800)  # 900 > 800: down to 400 or less, oldest first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new-cache"]
