"""Profiles one task's training on this machine: where the time of `kts <task> train` goes.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/profile_task.py style --preset demo --out reports/profile

Writes under OUT/<task>-<backend>/:
- `summary.json`: wall time of the train stage, the epochs' seconds (the first apart), the
  training steps/s, the same input stream read alone (batches/s: when it is not well above the
  training rate, the pipeline stalls `fit()`), XLA compilations (JAX: count and seconds, in
  the first epoch and after it: compilations after the first epoch mean retracing per batch
  shape), and the top functions of the profile;
- `profile.prof` (cProfile; `python -m pstats`, snakeviz) and `top.txt` (by own time and by
  cumulative time);
- with `--trace`: a JAX profiler (or TensorFlow profiler) trace of the training for
  TensorBoard / Perfetto.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import hardware  # noqa: E402
from shared import runtime  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task")
    p.add_argument("--preset", default="demo")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--backend", choices=runtime.BACKENDS, help="default: $KERAS_BACKEND")
    p.add_argument("--out", type=Path, default=Path("reports/profile"))
    p.add_argument("--trace", action="store_true", help="also write a JAX/TensorFlow profiler trace")
    p.add_argument("--stream-batches", type=int, default=0,
                   help="batches of the input stream to time alone (default: one epoch's steps, >= 50)")
    return p.parse_args(argv)


class Compiles:
    """Counts XLA compilations (JAX) and their seconds, split at the end of the first epoch."""

    def __init__(self):
        self.events: list[tuple[float, float]] = []  # (when, seconds)
        self.first_epoch_end: float | None = None

    def listen(self) -> bool:
        try:
            import jax.monitoring
        except ImportError:
            return False

        def on_event(event, duration, **_):
            if event == "/jax/core/compile/backend_compile_duration":
                self.events.append((time.perf_counter(), duration))

        jax.monitoring.register_event_duration_secs_listener(on_event)
        return True

    def summary(self) -> dict:
        cut = self.first_epoch_end or float("inf")
        first = [s for when, s in self.events if when <= cut]
        later = [s for when, s in self.events if when > cut]
        return {"first_epoch": {"count": len(first), "seconds": round(sum(first), 3)},
                "after_first_epoch": {"count": len(later), "seconds": round(sum(later), 3)}}


def capture_fit(compiles: Compiles) -> dict:
    """Wraps shared.training.fit: records its stream factory and steps, and marks the end of
    the first epoch for the compile count."""
    import keras

    from shared import training

    seen: dict = {}
    real_fit = training.fit

    class FirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if compiles.first_epoch_end is None:
                compiles.first_epoch_end = time.perf_counter()

    def fit(model, **kwargs):
        seen.setdefault("fits", []).append({"steps_per_epoch": kwargs["steps_per_epoch"]})
        seen["make_train_data"] = kwargs["make_train_data"]
        kwargs["extra_callbacks"] = [*(kwargs.get("extra_callbacks") or []), FirstEpoch()]
        result = real_fit(model, **kwargs)
        seen["fits"][-1]["epochs_seconds"] = result["history"].get("epoch_seconds", [])
        return result

    training.fit = fit
    return seen


def time_stream(make_train_data, batches: int) -> dict:
    """Reads `batches` batches of the training stream alone (no model): batches/s."""
    iterator = iter(make_train_data(0))
    next(iterator)  # start-up (worker threads, first decode) apart
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - started
    return {"batches": batches, "seconds": round(seconds, 3), "batches_per_s": round(batches / seconds, 2)}


def top(profile: cProfile.Profile, key: str, count: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats(key).print_stats(count)
    return out.getvalue()


def top_rows(profile: cProfile.Profile, count: int = 12) -> list[dict]:
    stats = pstats.Stats(profile).stats
    rows = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:count]
    return [{"function": f"{Path(file).name}:{line}:{name}", "own_s": round(own, 3), "cumulative_s": round(cum, 3),
             "calls": calls} for (file, line, name), (_, calls, own, cum, _) in rows]


def main(argv=None) -> int:
    args = parse(argv)
    runtime.select_backend(args.backend)
    compiles = Compiles()
    listening = compiles.listen() if os.environ.get("KERAS_BACKEND") == "jax" else False
    import keras

    from shared.cli import main as kts

    backend = keras.backend.backend()
    out = args.out / f"{args.task}-{backend}"
    out.mkdir(parents=True, exist_ok=True)
    seen = capture_fit(compiles)
    argv = [args.task, "train", "--preset", args.preset, "--quiet"]
    for override in args.overrides:
        argv += ["--set", override]
    profile = cProfile.Profile()
    with tempfile.TemporaryDirectory() as workdir:
        trace = _trace(backend, out / "trace") if args.trace else None
        started = time.perf_counter()
        profile.enable()
        code = kts([*argv, "--workdir", workdir])
        profile.disable()
        seconds = time.perf_counter() - started
        if trace:
            trace()
    if code != 0 or "fits" not in seen:
        print(f"profile_task: `kts {' '.join(argv)}` exited with {code}", file=sys.stderr)
        return code or 1
    profile.dump_stats(str(out / "profile.prof"))
    (out / "top.txt").write_text("# by own time\n" + top(profile, "tottime") + "\n# by cumulative time\n"
                                 + top(profile, "cumulative"))
    fit = seen["fits"][-1]
    steady = fit["epochs_seconds"][1:]
    steps_per_s = fit["steps_per_epoch"] * len(steady) / sum(steady) if steady else None
    stream = time_stream(seen["make_train_data"], args.stream_batches or max(50, fit["steps_per_epoch"]))
    summary = {
        "task": args.task, "preset": args.preset, "overrides": args.overrides, "backend": backend,
        "date": time.strftime("%Y-%m-%d"), "hardware": hardware(), "load_average": os.getloadavg()[0],
        "train_stage_seconds": round(seconds, 2), "fits": seen["fits"],
        "train_steps_per_s": round(steps_per_s, 2) if steps_per_s else None,
        "stream_alone": stream,
        "stream_over_training": round(stream["batches_per_s"] / steps_per_s, 2) if steps_per_s else None,
        "xla_compiles": compiles.summary() if listening else "not counted (JAX only)",
        "top_own_time": top_rows(profile),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("task", "backend", "train_stage_seconds", "train_steps_per_s",
                                              "stream_alone", "stream_over_training", "xla_compiles")}, indent=1))
    print(f"profile_task: {out}/summary.json, top.txt, profile.prof")
    return 0


def _trace(backend: str, folder: Path):
    """Starts the backend's profiler trace into `folder`; returns the function that stops it."""
    if backend == "jax":
        import jax

        jax.profiler.start_trace(str(folder))
        return jax.profiler.stop_trace
    if backend == "tensorflow":
        import tensorflow as tf

        tf.profiler.experimental.start(str(folder))
        return tf.profiler.experimental.stop
    return None


if __name__ == "__main__":
    sys.exit(main())
