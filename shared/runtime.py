"""Process-wide runtime: backend choice, data root, seeding, precision, environment facts.

`select_backend` must run before Keras is first imported; everything else imports Keras
lazily so that `kts --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
from pathlib import Path

BACKENDS = ("tensorflow", "jax")


def select_backend(backend: str | None, verbose: bool = False) -> str:
    """Sets KERAS_BACKEND (before Keras is imported) and returns the backend in use.

    Unless `verbose`, TensorFlow/absl/gRPC log lines are kept off the terminal: the log-level
    environment variables and warning filters are set here, and Keras (with the TensorFlow
    it loads) is imported at once with native stderr filtered (`quiet_native_logs`), because
    TensorFlow's C++ code prints `I0000 ...` lines before its log level is read. Keras is
    imported lean (`_import_keras`), for a fast start of `predict`/`translate`."""
    if backend:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}. Expected one of: {', '.join(BACKENDS)}")
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
            import keras

            if keras.backend.backend() != backend:
                raise RuntimeError(f"Keras was already imported with backend "
                                   f"{keras.backend.backend()!r}; cannot switch to {backend!r}.")
        os.environ["KERAS_BACKEND"] = backend
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        import logging
        import warnings

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++: errors (E...) and up hidden
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        os.environ.setdefault("GLOG_minloglevel", "3")
        for name in ("tensorflow", "absl", "jax", "h5py"):
            logging.getLogger(name).setLevel(logging.ERROR)
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category,
                                    module=r"(tensorflow|keras|jax|absl|google|tf_keras|grain)")
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:
            pass
    if "keras" not in sys.modules:
        with contextlib.nullcontext() if verbose else quiet_native_logs():
            _import_keras(os.environ.get("KERAS_BACKEND", "tensorflow"))
    if os.environ.get("KERAS_BACKEND") == "jax":
        enable_jax_compile_cache()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


JAX_CACHE_MAX_BYTES = 2 << 30


def jax_compile_cache_dir() -> Path | None:
    """Where JAX keeps compiled programs between processes: `$KTS_JAX_CACHE` ("off" turns it
    off), else `$XDG_CACHE_HOME/kts/jax` or `~/.cache/kts/jax`. None when off."""
    setting = os.environ.get("KTS_JAX_CACHE", "").strip()
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kts" / "jax"


def enable_jax_compile_cache() -> Path | None:
    """Turns on JAX's persistent compilation cache, so a process reuses what earlier ones
    compiled. Measured with benchmarks/profile_task.py: the classification smoke run makes 364
    XLA compilations (model building, the train and eval steps) taking 21 s of a 63 s train
    stage on 2 CPU cores; from the cache 1.2 s (train stage 32 s). Every program is cached
    (most are small and quick to compile, but many). JAX's own size limit scans the whole
    folder at every write, so the folder is tidied here instead, once per process
    (`tidy_jax_cache`). A JAX cache directory the user set (JAX_COMPILATION_CACHE_DIR) is left
    as it is; a folder that cannot be written turns the cache off. Returns the folder in use."""
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir or os.environ["JAX_COMPILATION_CACHE_DIR"])
    folder = jax_compile_cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    tidy_jax_cache(folder)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


def tidy_jax_cache(folder: Path, max_bytes: int = JAX_CACHE_MAX_BYTES) -> None:
    """Removes empty entries (a process killed as it wrote one; JAX would warn at each later
    read and never rewrite it) and, past `max_bytes`, the least recently used entries until
    the folder holds half of it."""
    entries = []
    try:
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    entries.append((stat.st_atime, stat.st_size, entry.path))
    except OSError:
        return
    total = sum(size for _, size, _ in entries)
    over = total > max_bytes
    for _, size, path in sorted(entries):  # least recently used first
        if size == 0 or (over and total > max_bytes // 2):
            with contextlib.suppress(OSError):
                os.remove(path)
                total -= size


def _import_keras(backend: str) -> None:
    """Imports Keras without the optional packages it loads at import time only because they
    are installed, and that nothing here uses through Keras: scikit-learn (keras.wrappers),
    matplotlib (keras.visualization) and, under TensorFlow, JAX (TensorFlow Lite's optional
    `jax.jit`; loading it also prints an `E0000 ... computation placer already registered`
    line). Together ~40% of `import keras` on 2 CPU cores. They are blocked in sys.modules
    for this import only: later imports of them work as usual (Keras' scikit-learn wrappers
    then report scikit-learn as missing)."""
    optional = ["sklearn", "matplotlib"] + (["jax", "jaxlib"] if backend != "jax" else [])
    blocked = [name for name in optional if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # import of it raises ImportError, which Keras/TF catch
    try:
        import keras  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


_NATIVE_LOG_LINE = re.compile(rb"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before "
                              rb"absl::InitializeLog)")


@contextlib.contextmanager
def quiet_native_logs():
    """Filters what native code writes to file descriptor 2 inside the block: glog/absl lines
    (`I0000 ...`, `W0000 ...`, `E0000 ...` and absl's pre-init notice) are dropped, every other
    line (a Python traceback, a real error) is written to stderr after the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, closed): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True)
                    if not _NATIVE_LOG_LINE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


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
        if module is not None:
            info["versions"][name] = getattr(module, "__version__", "unknown")
        elif name != "tensorflow":  # installed but not loaded: its version without importing
            # it (importing JAX next to TensorFlow costs seconds and logs an E0000 line)
            from importlib import metadata

            try:
                info["versions"][name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
    return info


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True
