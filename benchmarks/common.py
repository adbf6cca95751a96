"""What every benchmark shares: the common flags, steady-state summaries, hardware facts."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from shared import runtime  # stdlib only: safe before Keras is imported


def add_common_args(parser: argparse.ArgumentParser, gpu_defaults: str, cpu_defaults: str) -> None:
    """--images/--batch-size/--epochs (defaults depend on the device, described by the two
    strings) and --backend/--precision/--torch-compile/--no-peer/--json."""
    parser.add_argument("--images", type=int, help=f"images per epoch ({gpu_defaults} / {cpu_defaults})")
    parser.add_argument("--batch-size", type=int, help=f"see --images ({gpu_defaults} / {cpu_defaults})")
    parser.add_argument("--epochs", type=int, help="epochs in all, the first is warm-up (>= 2)")
    parser.add_argument("--backend", choices=runtime.BACKENDS, help="default: $KERAS_BACKEND")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"))
    parser.add_argument("--torch-compile", action="store_true", help="torch.compile the peer model")
    parser.add_argument("--no-peer", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 2:
        parser.error(f"--epochs must be >= 2 (one warm-up + timed epochs). Received: {args.epochs}")
    return args


def summarize(epoch_seconds: list[float], images_per_epoch: int) -> dict:
    """First (warm-up/compile) epoch apart; images/s over the remaining epochs."""
    steady = epoch_seconds[1:]
    return {"first_epoch_s": epoch_seconds[0], "epoch_s": epoch_seconds,
            "images_per_s": images_per_epoch * len(steady) / sum(steady)}


def hardware() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = None
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True).stdout.strip() or None
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "gpu": gpu}


def on_gpu() -> bool:
    """Whether Keras sees a GPU (call after the backend is selected)."""
    return any("gpu" in device.lower() or "cuda" in device.lower() for device in runtime.accelerators())


def run_peer_if_available(args: argparse.Namespace, run_peer: Callable[[], dict], ours_params: int,
                          tolerance: float = 1e-3) -> dict | None:
    """`run_peer()` unless --no-peer or PyTorch is missing (each said in one line); raises if
    the peer's trainable parameter count is off ours by more than `tolerance` (relative)."""
    if args.no_peer:
        print("peer: skipped (--no-peer)")
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        print("peer: SKIPPED, `import torch` failed (pip install torch to compare)")
        return None
    peer = run_peer()
    if abs(peer["trainable_params"] / ours_params - 1) > tolerance:
        raise RuntimeError(f"Parameter counts differ: ours {ours_params:,}, peer {peer['trainable_params']:,}")
    return peer


def finish(args: argparse.Namespace, report: dict) -> dict:
    """Adds the date and hardware, writes --json (atomically) if asked, returns the report."""
    report = {"date": datetime.date.today().isoformat(), "hardware": hardware(), **report}
    if args.json:
        from shared.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2, default=str))
        print(f"wrote {args.json}")
    return report


def epoch_timer():
    """A Keras callback recording each epoch's wall time (`.seconds`) and loss (`.losses`);
    reading the loss at the epoch's end waits until its work is done. Import after the
    backend is selected."""
    import time

    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.losses: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.losses.append(float((logs or {}).get("loss", 0.0)))
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()
