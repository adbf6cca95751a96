"""`kts demo`: every task at demo scale on the bundled data, then `reports/index.html`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from shared.cli import run_task_command
    from tasks import TASKS

    parser = argparse.ArgumentParser(prog="kts demo")
    parser.add_argument("--workdir", type=Path, default=Path("runs/demo"),
                        help="run folders go to WORKDIR/<task> (default runs/demo)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--backend", choices=("tensorflow", "jax"))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="subset of tasks")
    parser.add_argument("--preset", default="demo", help="preset for every task (tests: smoke)")
    args = parser.parse_args(argv)
    failures = []
    for task in args.tasks:
        started = time.perf_counter()
        command = ["run", "--preset", args.preset, "--workdir", str(args.workdir / task),
                   "--reports-dir", str(args.reports_dir), "--quiet"]
        if args.data_root:
            command += ["--data-root", str(args.data_root)]
        if args.backend:
            command += ["--backend", args.backend]
        print(f"=== kts {task} {' '.join(command)}", flush=True)
        try:
            run_task_command(task, command)
        except Exception as err:  # noqa: BLE001 - one task failing must not hide the others
            failures.append(task)
            print(f"demo: {task} failed: {err}")
        print(f"=== {task}: {time.perf_counter() - started:.0f} s", flush=True)
    print(f"demo: reports in {args.reports_dir / 'index.html'}")
    return 1 if failures else 0
