"""`kts`: the command line. It parses, sets the backend, and calls one Task method.

    kts list
    kts <task> <train|evaluate|export|predict|report|run> [options]
    kts <task> tune --preset P --param KEY=SPEC ... --trials N   (shared/tune.py)
    kts demo [--workdir DIR]
    kts data list | fetch [NAME ...|--all] | verify [NAME ...]

Keras is imported only after `--backend` has set KERAS_BACKEND.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from shared import distribute, runtime

COMMANDS = ("train", "evaluate", "export", "predict", "report", "run")


def load_task(name: str):
    from tasks import TASKS

    if name not in TASKS:
        raise SystemExit(f"Unknown task {name!r}. Expected one of: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, help="run folder (default runs/<task>/<preset>)")
    parser.add_argument("--data-root", type=Path,
                        help="data root (default $KTS_DATA, else ../shared/data, else ~/.cache/kts)")
    parser.add_argument("--backend", choices=runtime.BACKENDS,
                        help="Keras backend (default $KERAS_BACKEND, else tensorflow)")
    parser.add_argument("--precision",
                        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
                        help="dtype policy (default: the config's train.precision, 'auto')")
    parser.add_argument("--distribute", choices=("none", "auto", "data_parallel"),
                        help="train on several devices/hosts (default: the config's "
                             "train.distribute, 'none'); see README, Multi-device and multi-host")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"),
                        help="where reports/index.html lists every task's latest report")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch, less output")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow/JAX/absl log lines (hidden by default)")


def task_parser(task_name: str, aliases: dict | None = None,
                inputs_help: str = "predict: image files") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"kts {task_name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"also:\n  kts {task_name} --list-presets          every preset: what it is for, "
               f"its command, the result to expect\n  kts {task_name} --show-config [PRESET]  "
               "every --set key with its value and type")
    parser.add_argument("command", choices=COMMANDS + tuple(aliases or {}))
    parser.add_argument("inputs", nargs="*", help=inputs_help)
    parser.add_argument("--preset", default=None, help="config preset (see --list-presets)")
    parser.add_argument("--config", type=Path,
                        help="train/run: start from this config file (a run's config.json, tune's best_config.json)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="typed config override, e.g. train.epochs=3")
    parser.add_argument("--seed", type=int, help="random seed (overrides the config's seed)")
    parser.add_argument("--resume", action="store_true",
                        help="train: continue from the run folder's last checkpoint")
    parser.add_argument("--out", type=Path, help="predict: folder for outputs")
    _common(parser)
    return parser


def config_from_file(task, args):
    """--config FILE: the config saved there, then --set and --seed (a --preset is refused)."""
    from shared import config as config_lib

    if args.preset:
        raise config_lib.ConfigError("--config and --preset both name the starting config; give one.")
    cfg = config_lib.apply_overrides(config_lib.load(task.config_class, args.config), args.overrides)
    if args.seed is not None:
        cfg.seed = args.seed
    return cfg


def build_run(task, args):
    from shared import config as config_lib
    from shared.io import check_writable
    from shared.task import Run, RunDir

    preset = args.preset or (args.config.stem if getattr(args, "config", None) else "demo")
    workdir = args.workdir or Path("runs") / task.name / preset
    processes = distribute.processes()
    if processes.count > 1 and not processes.chief:  # the chief writes the run folder; the
        workdir = workdir / f"process-{processes.index}"  # others their own copy inside it
    run_dir = RunDir(workdir, task.name)
    fresh = (args.command in ("train", "run") and not args.resume
             or args.command in getattr(task, "standalone_commands", ()))  # e.g. `kts style transfer`
    if fresh or not run_dir.config_json.exists():
        if not fresh and args.command not in ("train", "run"):
            run_dir.require_model()  # explains that training comes first
        cfg = (task.make_config(preset, args.overrides, args.seed) if not getattr(args, "config", None)
               else config_from_file(task, args))
    else:  # continue an existing run with its saved config
        cfg = config_lib.load(task.config_class, run_dir.config_json)
        if args.preset:
            print(f"Using the config saved in {run_dir.config_json}; --preset {args.preset} "
                  "is ignored for an existing run.")
        config_lib.apply_overrides(cfg, args.overrides)
        if args.seed is not None:
            cfg.seed = args.seed
    # Every command writes the run folder (timings.json at least): say so before any work.
    check_writable(workdir)
    if getattr(args, "out", None) is not None:
        check_writable(args.out, "the output folder")
    if args.command in ("report", "run"):
        check_writable(args.reports_dir, "the reports folder")
    if args.precision:
        cfg.train.precision = args.precision
    if getattr(args, "distribute", None):
        cfg.train.distribute = args.distribute
    if args.command in ("train", "run"):
        config_lib.save(cfg, run_dir.config_json)
    return Run(config=cfg, dir=run_dir, data_root=runtime.resolve_data_root(args.data_root),
               preset=preset, resume=args.resume, quiet=args.quiet,
               reports_dir=args.reports_dir)


def run_task_command(task_name: str, argv: list[str]) -> int:
    if argv and argv[0] in ("--list-presets", "presets"):
        print(load_task(task_name).describe_presets())
        return 0
    if argv and argv[0] == "--show-config":  # every --set key with its value and type
        from shared.config import describe

        task = load_task(task_name)
        preset = argv[1] if len(argv) > 1 else "demo"
        print(f"# kts {task_name} --preset {preset}: keys for --set KEY=VALUE\n"
              + describe(task.make_config(preset, [])))
        return 0
    if argv and argv[0] == "tune":  # hyperparameter search: its own options (shared/tune.py)
        from shared.tune import main as tune_main

        return tune_main(task_name, argv[1:])
    task = load_task(task_name)
    aliases = getattr(task, "aliases", {})
    parser = task_parser(task_name, aliases, task.inputs_help)
    extra = [parser.add_argument(flag, **kwargs).dest for flag, kwargs in getattr(task, "extra_arguments", ())]
    args = parser.parse_args(argv)
    args.command = aliases.get(args.command, args.command)
    runtime.select_backend(args.backend, verbose=args.verbose)
    if args.command in ("train", "run"):  # several processes launched: join them first
        distribute.initialize_processes()
    run = build_run(task, args)
    run.options = {dest: getattr(args, dest) for dest in extra}
    if args.command != "predict":  # inference draws no random numbers; seeding would also
        runtime.seed_everything(run.config.seed)  # import TensorFlow under JAX (seconds)
    runtime.set_precision(run.config.train.precision)
    if args.command == "run" and not distribute.processes().chief:
        task.run_stage(run, "train")  # evaluate, export and report: the chief's alone
    elif args.command == "run":
        task.run_all(run)
    elif args.command == "predict" or args.command in getattr(task, "standalone_commands", ()):
        if not args.inputs:
            raise SystemExit(f"{args.command} needs one or more inputs: "
                             f"kts {task_name} {' | '.join(['predict', *aliases])} INPUT [INPUT ...]")
        task.run_stage(run, args.command, inputs=args.inputs, out=args.out)
    else:
        task.run_stage(run, args.command)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from tasks import TASKS

    usage = (f"usage: kts list | kts demo [--workdir DIR] | kts data list|fetch|verify | "
             f"kts <task> <command> [options]\n"
             f"tasks: {', '.join(TASKS)}; commands: {', '.join(COMMANDS)}\n"
             "kts <task> --help for the options; kts <task> --list-presets for the presets; "
             "kts <task> --show-config [PRESET] for every --set key")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    head, rest = argv[0], argv[1:]
    try:
        if head == "list":
            for name in TASKS:
                print(name)
            return 0
        if head == "demo":
            from shared.demo import main as demo_main

            return demo_main(rest)
        if head == "data":
            from shared.data_cli import main as data_main

            return data_main(rest)
        if head in TASKS:
            return run_task_command(head, rest)
        print(f"Unknown task or command {head!r}.\n{usage}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, ImportError) as err:
        if os.environ.get("KTS_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `kts ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
