"""`kts data`: the registry's datasets under the data root.

    kts data list                         # name, size, present or not, where, license
    kts data fetch bccd multi30k          # or --all; downloads (network), checksummed
    kts data verify [NAME ...]            # sha256 of every file present

The data root is `--data-root`, else `$KTS_DATA`, else `../shared/data` beside the checkout if
present, else the user cache (`~/.cache/kts`, or `$XDG_CACHE_HOME/kts`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shared import runtime


def root_and_origin(data_root: Path | None) -> tuple[Path, str]:
    """The data root and why it is that one, for messages."""
    root = runtime.resolve_data_root(data_root)
    if data_root:
        return root, "--data-root"
    if os.environ.get("KTS_DATA"):
        return root, "KTS_DATA"
    if root == runtime.user_cache_dir():
        return root, "the user cache; no kit beside the checkout"
    return root, "the data kit beside the checkout"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kts data", description="List, fetch and verify the datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-root", type=Path,
                        help="data root (default $KTS_DATA, else ../shared/data, else ~/.cache/kts)")
    sub.add_parser("list", parents=[common], help="every dataset: size, present or not, where, license")
    fetch = sub.add_parser("fetch", parents=[common], help="download datasets (needs a network)")
    fetch.add_argument("names", nargs="*", metavar="NAME")
    fetch.add_argument("--all", action="store_true", help="every dataset in the registry")
    fetch.add_argument("--mirror", help="fetch from MIRROR/<folder>/<path> (a served data root) instead "
                                        "of upstream (default $KTS_DATA_MIRROR)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    verify = sub.add_parser("verify", parents=[common], help="check sha256 of the files present")
    verify.add_argument("names", nargs="*", metavar="NAME", help="default: every dataset present")
    return parser


def _selected(names: list[str]) -> list:
    from pipelines import registry

    return [registry.get(name) for name in names] if names else list(registry.datasets().values())


def list_datasets(root: Path, origin: str, out=sys.stdout) -> None:
    from pipelines.fetch import installed, status

    print(f"data root: {root} ({origin})", file=out)
    print(f"{'name':<13} {'size':>9}  {'state':<18} where", file=out)
    for dataset in _selected([]):
        state = status(dataset, root)
        present = ("present" if state.present else
                   f"partial {len(dataset.files) - len(state.missing)}/{len(dataset.files)}" if state.partly
                   else "missing, in gensim" if all(installed(f) for f in dataset.files) else "missing")
        print(f"{dataset.name:<13} {dataset.size / 1e6:6.1f} MB  {present:<18} {state.folder}", file=out)
        print(f"{'':13} license: {dataset.license}", file=out)


def fetch_datasets(root: Path, names: list[str], mirror: str | None, quiet: bool) -> int:
    from pipelines.download import ChecksumError, DownloadError
    from pipelines.fetch import fetch

    failed = []
    for dataset in _selected(names):
        try:
            fetch(dataset, root, mirror=mirror, progress=False if quiet else None)
        except (DownloadError, ChecksumError) as err:
            failed.append(dataset.name)
            print(f"error: {err}", file=sys.stderr)
        except OSError as err:
            failed.append(dataset.name)
            print(f"error: cannot write {dataset.name} under {root}: {err}. Pass a data root you can write "
                  "to with --data-root DIR or KTS_DATA.", file=sys.stderr)
    if failed:
        print(f"kts data fetch: {', '.join(failed)} failed (see above).", file=sys.stderr)
    return 1 if failed else 0


def verify_datasets(root: Path, names: list[str]) -> int:
    from pipelines.fetch import status, verify

    bad = checked = 0
    for dataset in _selected(names):
        if not names and len(status(dataset, root).missing) == len(dataset.files):
            continue  # not fetched: nothing to verify unless asked by name
        result = verify(dataset, root)
        for problem in result["problems"]:
            print(f"error: {problem}", file=sys.stderr)
        missing = result["missing"]
        if missing:
            print(f"{dataset.name}: {len(missing)} file(s) missing under {root / dataset.folder} (first: "
                  f"{missing[0]}); `kts data fetch {dataset.name}` fetches them.", file=sys.stderr)
        ok = not result["problems"] and not missing
        bad += not ok
        print(f"{dataset.name}: {result['checked']} file(s) checked, {'ok' if ok else 'NOT ok'}")
        checked += 1
    if not checked:
        print(f"No dataset present under {root}: nothing to verify (`kts data list` shows them).")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    root, origin = root_and_origin(args.data_root)
    if args.command == "list":
        list_datasets(root, origin)
        return 0
    if args.command == "fetch":
        if not args.names and not args.all:
            from pipelines import registry

            print(f"kts data fetch: name one or more datasets, or --all. Datasets: "
                  f"{', '.join(registry.datasets())}", file=sys.stderr)
            return 2
        print(f"data root: {root} ({origin})")
        return fetch_datasets(root, [] if args.all else args.names, args.mirror, args.quiet)
    return verify_datasets(root, args.names)
