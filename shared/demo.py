"""`kts demo`: every task at demo scale, then `reports/index.html` with every task's status.

Before training, the datasets the tasks' presets read (pipelines.registry) are fetched into
the data root when missing (network). A task whose data is still missing (no network, no
kit) is skipped and reported with the reason; the others run. The exit status is non-zero
only when a task that had its data failed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _needed(task_name: str, preset: str) -> list:
    """The registry datasets that `task_name`'s `preset` reads (by its config's data.source)."""
    from pipelines import registry
    from shared.cli import load_task

    cfg = load_task(task_name).make_config(preset, [])
    source = getattr(getattr(cfg, "data", None), "source", "")
    return registry.for_data_source(source)


def _short(err: BaseException, limit: int = 300) -> str:
    text = f"{type(err).__name__}: {err}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _prepare_data(datasets: list, root: Path, fetch_missing: bool, mirror: str | None) -> dict[str, str]:
    """Fetches what is missing (unless told not to); returns {dataset name: why it is missing}."""
    from pipelines.download import ChecksumError, DownloadError
    from pipelines.fetch import fetch, status

    missing = {}
    for dataset in datasets:
        if status(dataset, root).present:
            continue
        where = root / dataset.folder
        if not fetch_missing:
            missing[dataset.name] = (f"missing data: {dataset.name} is not under {where} (--no-fetch); "
                                     f"`kts data fetch {dataset.name}` downloads it")
            continue
        try:
            fetch(dataset, root, mirror=mirror, retries=1, timeout=30)  # no network: skip soon
        except (DownloadError, ChecksumError, OSError) as err:
            missing[dataset.name] = (f"missing data: {dataset.name} is not under {where} and fetching it "
                                     f"failed ({_short(err, 200)}); run `kts data fetch {dataset.name}` with a "
                                     "network, or pass --data-root DIR of a folder that holds it")
    return missing


def main(argv: list[str]) -> int:
    from shared import runtime
    from shared.report import record_task_status
    from tasks import TASKS

    parser = argparse.ArgumentParser(prog="kts demo")
    parser.add_argument("--workdir", type=Path,
                        help="run folders go to WORKDIR/<task> (default runs/<task>/<preset>, where "
                             "`kts <task> run --preset <preset>` writes and predict/translate look)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--backend", choices=("tensorflow", "jax"))
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="subset of tasks")
    parser.add_argument("--preset", default="demo", help="preset for every task (tests: smoke)")
    parser.add_argument("--no-fetch", action="store_true",
                        help="do not download missing datasets; skip the tasks that need them")
    parser.add_argument("--mirror", help="fetch datasets from this served data root instead of upstream")
    args = parser.parse_args(argv)
    from shared.cli import run_task_command

    runtime.select_backend(args.backend)
    root = runtime.resolve_data_root(args.data_root)
    needs = {task: _needed(task, args.preset) for task in args.tasks}
    wanted = list({d.name: d for task in args.tasks for d in needs[task]}.values())
    missing = _prepare_data(wanted, root, not args.no_fetch, args.mirror)
    results: dict[str, tuple[str, str, float]] = {}  # task -> (status, reason or run folder, seconds)
    for task in args.tasks:
        reasons = [missing[d.name] for d in needs[task] if d.name in missing]
        if reasons:
            results[task] = ("skipped", "; ".join(reasons), 0.0)
            print(f"=== {task}: skipped, {results[task][1]}", flush=True)
            record_task_status(args.reports_dir, task, "skipped", results[task][1])
            continue
        started = time.perf_counter()
        workdir = args.workdir / task if args.workdir else Path("runs") / task / args.preset
        command = ["run", "--preset", args.preset, "--workdir", str(workdir),
                   "--reports-dir", str(args.reports_dir), "--quiet", "--data-root", str(root)]
        if args.backend:
            command += ["--backend", args.backend]
        print(f"=== kts {task} {' '.join(command)}", flush=True)
        try:
            run_task_command(task, command)
        except Exception as err:  # noqa: BLE001 - one task failing must not hide the others
            results[task] = ("failed", _short(err), time.perf_counter() - started)
            print(f"demo: {task} failed: {err}", flush=True)
            record_task_status(args.reports_dir, task, "failed", results[task][1])
        else:
            results[task] = ("ok", str(workdir), time.perf_counter() - started)
            record_task_status(args.reports_dir, task, "ok")
        print(f"=== {task}: {results[task][2]:.0f} s", flush=True)
    print("demo summary:")
    for task, (status, detail, seconds) in results.items():
        print(f"  {task:<16} {status:<8} {f'{seconds:.0f} s' if status != 'skipped' else '':>6}  {detail}")
    print(f"demo: every task's status in {args.reports_dir / 'index.html'}")
    return 1 if any(status == "failed" for status, _, _ in results.values()) else 0
