"""Writes manifest.json (path, size, sha256 of every file of every dataset) from a data kit
whose files are byte-identical to upstream:

    python -m pipelines.registry.make_manifest ../shared/data

Each dataset's folder is walked; SOURCE.md (the kit's own notes) is left out, and every other
file must be covered by one of the entry's origins, so a new file cannot go unlisted.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from pipelines.registry.datasets import ENTRIES, MANIFEST
from shared.io import atomic_write_text

KIT_NOTES = {"SOURCE.md"}


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def manifest_rows(kit: Path) -> dict[str, list[list]]:
    manifest = {}
    for entry in ENTRIES:
        folder = kit / entry.folder
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} not found: the kit has no {entry.name} folder.")
        rows = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in KIT_NOTES):
            relative = path.relative_to(folder).as_posix()
            entry.origin_for(relative)  # raises if no upstream origin covers the file
            rows.append([relative, path.stat().st_size, sha256_file(path)])
        manifest[entry.name] = rows
    return manifest


def render(manifest: dict[str, list[list]]) -> str:
    """JSON with one file per line, so a changed file is a one-line diff."""
    import json

    parts = []
    for name, rows in manifest.items():
        lines = ",\n".join(f"    {json.dumps(row)}" for row in rows)
        parts.append(f"  {json.dumps(name)}: [\n{lines}\n  ]")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kit", type=Path, help="the data kit (e.g. ../shared/data)")
    parser.add_argument("--out", type=Path, default=MANIFEST)
    args = parser.parse_args(argv)
    manifest = manifest_rows(args.kit)
    atomic_write_text(args.out, render(manifest))
    for name, rows in manifest.items():
        print(f"{name}: {len(rows)} files, {sum(r[1] for r in rows):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
