"""Process-wide runtime: backend choice, data root, seeding, precision, environment facts.

`select_backend` must run before Keras is first imported; everything else imports Keras
lazily so that `kts --help` stays fast.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax")


def select_backend(backend: str | None) -> str:
    """Sets KERAS_BACKEND (before Keras is imported) and returns the backend in use."""
    if backend:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}. Expected one of: {', '.join(BACKENDS)}")
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
            import keras

            if keras.backend.backend() != backend:
                raise RuntimeError(f"Keras was already imported with backend "
                                   f"{keras.backend.backend()!r}; cannot switch to {backend!r}.")
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def user_cache_dir() -> Path:
    """Where `kts data fetch` puts data by default: $XDG_CACHE_HOME/kts, else ~/.cache/kts."""
    cache = os.environ.get("XDG_CACHE_HOME")
    return Path(cache if cache and os.path.isabs(cache) else Path.home() / ".cache") / "kts"


def default_data_root() -> Path:
    """`KTS_DATA`, else `../shared/data` beside the repo (or the cwd) if present, else the
    user cache (`user_cache_dir()`, where `kts data fetch` downloads to)."""
    env = os.environ.get("KTS_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    for candidate in (repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return user_cache_dir()


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root) if data_root else default_data_root()


def require_path(path: Path, what: str, setting: str | None = None, dataset: str | None = None) -> Path:
    """Raises FileNotFoundError naming the path tried and how to provide the data: the config
    key `setting` when the path comes from one, `kts data fetch DATASET` for a registry
    dataset, else the data root."""
    if not Path(path).exists():
        how = (f"set it with --set {setting}=PATH" if setting else
               "point the suite at the data root that holds it with --data-root DIR or the "
               "environment variable KTS_DATA")
        if dataset:
            how = f"fetch it with `kts data fetch {dataset}` (needs a network), or {how}"
        raise FileNotFoundError(f"{what} not found at {path}. Put the data there, or {how}.")
    return Path(path)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seeds Python, NumPy and the Keras backend; asks TF for deterministic ops."""
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # noqa: BLE001 - older TF: best effort
            pass


def accelerators() -> list[str]:
    import keras

    try:
        return [d for d in keras.distribution.list_devices() if not d.lower().startswith("cpu")]
    except Exception:  # noqa: BLE001
        return []


def _gpu_supports_bfloat16() -> bool:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        for device in jax.devices():
            capability = getattr(device, "compute_capability", None)
            if device.platform == "gpu" and capability and float(capability) >= 8.0:
                return True
        return False
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            if details.get("compute_capability", (0, 0))[0] >= 8:
                return True
    return False


def resolve_precision(precision: str) -> str:
    """'auto' -> mixed_bfloat16 on GPUs with bf16 (Ampere or newer), else float32."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if _gpu_supports_bfloat16() else "float32"


def set_precision(precision: str) -> str:
    import keras

    policy = resolve_precision(precision)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy


def environment() -> dict:
    """Backend, devices and versions, for reports."""
    import keras
    import numpy as np

    info = {
        "backend": keras.backend.backend(),
        "devices": accelerators() or ["cpu"],
        "dtype_policy": keras.mixed_precision.dtype_policy().name,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": {"keras": keras.__version__, "numpy": np.__version__},
    }
    for name in ("tensorflow", "jax", "grain"):
        module = sys.modules.get(name)
        if module is None and name != "tensorflow":
            try:
                module = __import__(name)
            except ImportError:
                module = None
        if module is not None:
            info["versions"][name] = getattr(module, "__version__", "unknown")
    return info


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True
