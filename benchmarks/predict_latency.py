"""Cold-start latency of `predict` / `translate` for one input, against two peers, side by side.

Users call `kts <task> predict` from scripts, one process per call, so what counts is the
whole process: Python start, imports, model loading and one forward pass. For each task with
a trained run folder, three fresh processes are timed, alternately, `--repeats` times each:

- ours: `python -m shared.cli <task> predict INPUT --workdir RUN` (`translate` for seq2seq);
- bare Keras: `import keras`, `keras.models.load_model(RUN/model.keras)` (the task's model
  classes registered, no pipeline/report code) and one forward pass on a dummy input, in a
  `python -c` of a few lines: what any Keras user pays;
- SavedModel: `import tensorflow`, `tf.saved_model.load(RUN/export/saved_model)` and one call
  of its signature (preprocessing, NMS or beam search included), when TF and the export exist.

The best (minimum) wall time of the repeats is reported, with the ratio ours / peer (lower
is better; 1.0 = as fast as the peer). Timings are never asserted anywhere.

    .venv/bin/python benchmarks/predict_latency.py                      # runs/<task>/demo (where make demo writes)
    .venv/bin/python benchmarks/predict_latency.py --classification runs/classification/digits \
        --detection runs/detection/smoke --seq2seq runs/seq2seq/dates --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.common import finish, hardware  # noqa: E402

TASKS = ("classification", "detection", "seq2seq")
REGISTERS = {  # the modules that register each task's custom model classes
    "classification": "tasks.classification.layers",
    "detection": "tasks.detection.detector",
    "seq2seq": "tasks.seq2seq.rnn, tasks.seq2seq.transformer",
}
BARE_KERAS = """
import sys, numpy as np, keras
import {registers}
model = keras.models.load_model(sys.argv[1], compile=False)
{call}
"""
KERAS_CALLS = {
    "classification": "model(np.zeros((1, *model.inputs[0].shape[1:]), np.float32), training=False)",
    "detection": "model.predict_on_batch(np.zeros((1, model.image_size, model.image_size, 3), "
                 "np.float32))",
    "seq2seq": "pass  # decoding lives outside the model; load only",
}
SAVED_MODEL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
{call}
"""
SAVED_MODEL_CALLS = {
    "classification": "loaded.signatures['serving_default'](images=tf.zeros((1, 20, 20, 1), tf.uint8))",
    "detection": "loaded.signatures['serving_default'](images=tf.zeros((1, 300, 400, 3), tf.uint8))",
    "seq2seq": "loaded.signatures['translate'](source_ids=tf.constant([[5, 6, 7, 8, 3]], tf.int32))",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for task in TASKS:
        parser.add_argument(f"--{task}", type=Path, default=REPO / "runs" / task / "demo",
                            help=f"trained {task} run folder (default runs/{task}/demo)")
    parser.add_argument("--repeats", type=int, default=3, help="timed processes per command")
    parser.add_argument("--backend", choices=("tensorflow", "jax"),
                        help="default: $KERAS_BACKEND, else tensorflow")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1. Received: {args.repeats}")
    return args


def task_input(task: str, run: Path, scratch: Path) -> str:
    """One input for `predict`: a small grey digit-like PNG, a BCCD image (else a synthetic
    photo-sized one), or a sentence in the run's source language."""
    import numpy as np
    from PIL import Image

    if task == "classification":
        path = scratch / "digit.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20), np.uint8)).save(path)
        return str(path)
    if task == "detection":
        from shared.runtime import default_data_root

        images = default_data_root() / "bccd" / "BCCD" / "JPEGImages"
        if images.is_dir() and any(images.glob("*.jpg")):
            return str(sorted(images.glob("*.jpg"))[0])
        path = scratch / "cells.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(path)
        return str(path)
    source = json.loads((run / "config.json").read_text())["data"]["source"]
    return "3 May 1979" if source == "dates" else "Zwei Kinder spielen Fußball im Park."


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])}... failed ({done.returncode}):\n"
                           f"{done.stderr[-2000:]}")
    return seconds


def commands(task: str, run: Path, scratch: Path) -> dict[str, list[str]]:
    python = sys.executable
    verb = "translate" if task == "seq2seq" else "predict"
    found = {"ours": [python, "-m", "shared.cli", task, verb, task_input(task, run, scratch),
                      "--workdir", str(run)],
             "bare Keras": [python, "-c", BARE_KERAS.format(registers=REGISTERS[task],
                                                            call=KERAS_CALLS[task]),
                            str(run / "model.keras")]}
    saved = run / "export" / "saved_model"
    try:
        import importlib.util

        has_tf = importlib.util.find_spec("tensorflow") is not None
    except ValueError:
        has_tf = False
    if saved.is_dir() and has_tf:
        found["SavedModel"] = [python, "-c", SAVED_MODEL.format(call=SAVED_MODEL_CALLS[task]),
                               str(saved)]
    return found


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    env = dict(os.environ)
    env["KERAS_BACKEND"] = args.backend or env.get("KERAS_BACKEND", "tensorflow")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the peers' log lines, as ours are quiet
    print(f"cold-start latency, one input, best of {args.repeats} fresh processes; backend "
          f"{env['KERAS_BACKEND']}; {hardware()['cpu_cores']} CPU cores")
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for task in TASKS:
            run = getattr(args, task)
            if not (run / "model.keras").exists():
                print(f"{task}: SKIPPED, no trained model at {run / 'model.keras'} "
                      f"(train one, or pass --{task} RUN)")
                continue
            runs = commands(task, run, Path(scratch))
            seconds: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.repeats):  # alternate, so load changes hit every side alike
                for name, command in runs.items():
                    seconds[name].append(timed(command, env))
            best = {name: min(values) for name, values in seconds.items()}
            results[task] = {"run": str(run), "seconds": seconds, "best_s": best,
                             "ratio_vs": {name: best["ours"] / best[name]
                                          for name in best if name != "ours"}}
            peers = "; ".join(f"{name} {best[name]:.2f} s, ours / {name} = "
                              f"{best['ours'] / best[name]:.2f}" for name in best if name != "ours")
            print(f"{task:>14}: ours {best['ours']:.2f} s | {peers}")
    return finish(args, {"benchmark": "predict_latency", "backend": env["KERAS_BACKEND"],
                         "repeats": args.repeats, "tasks": results})


if __name__ == "__main__":
    main()
