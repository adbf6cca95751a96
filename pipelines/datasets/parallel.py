"""Parallel text (translation pairs): one random-access `ParallelSource` and its loaders.

An element is `{"source_text": str, "target_text": str}`; `pipelines.seq_ops.Tokenize`
turns it into id arrays. Loaders read everything up front (a few MB) and never stop on a
bad line: a line that is empty (on either side), not UTF-8 or has too few TSV columns is
skipped and listed in `source.skipped` as `{"path", "line", "reason"}` (1-based line
numbers). Lines are split on "\\n" only (not `str.splitlines`, which also splits on
U+2028, form feeds and the like and would silently shift a line-aligned corpus); "\\r" and
surrounding whitespace are stripped, nothing else is changed (tokenizers normalise).

With `max_chars`, a text longer than that is cut to its first `max_chars` characters and
counted in `source.truncated` (a guard against runaway lines in scraped data; off by
default).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

from pipelines.registry import fetch_hint

MULTI30K_LANGUAGES = ("en", "de")
#: Split name -> file stem under <data-root>/multi30k/raw (test = the usual "test2016").
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}


class ParallelSource:
    """Aligned (source text, target text) pairs held in memory; grain-compatible."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str], skipped: list[dict] | None = None,
                 truncated: int = 0):
        if len(sources) != len(targets):
            raise ValueError(f"Expected as many sources as targets; received {len(sources)} and {len(targets)}.")
        self.sources: list[str] = [str(text) for text in sources]
        self.targets: list[str] = [str(text) for text in targets]
        self.skipped: list[dict] = list(skipped or [])
        self.truncated = int(truncated)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str]]) -> ParallelSource:
        return cls([source for source, _ in pairs], [target for _, target in pairs])

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= int(index) < len(self):
            raise IndexError(f"Index {index} out of range for a source of length {len(self)}.")
        return {"source_text": self.sources[int(index)], "target_text": self.targets[int(index)]}

    def pair(self, index: int) -> tuple[str, str]:
        return self.sources[index], self.targets[index]

    def reversed(self) -> ParallelSource:
        """The same pairs in the other translation direction."""
        return ParallelSource(self.targets, self.sources, self.skipped, self.truncated)

    def __repr__(self) -> str:
        return f"ParallelSource(len={len(self)}, skipped={len(self.skipped)}, truncated={self.truncated})"


def _read_lines(path: Path) -> tuple[list[str | None], list[dict]]:
    """Every line of a text or .gz file without its "\r\n"/"\n"; None (and a skipped entry) where not UTF-8."""
    if not path.is_file():
        raise FileNotFoundError(f"Text file {path} not found.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()  # the final newline ends the last line; it does not start another
    lines: list[str | None] = []
    skipped: list[dict] = []
    for number, data in enumerate(raw, start=1):
        try:
            text = data.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            skipped.append({"path": str(path), "line": number, "reason": f"not UTF-8 ({error.reason})"})
            lines.append(None)
        else:
            lines.append(text.removesuffix("\r"))
    return lines, skipped


class _Collector:
    """Builds a ParallelSource pair by pair, with skipping and the optional truncation."""

    def __init__(self, max_chars: int | None):
        self.max_chars, self.sources, self.targets = max_chars, [], []
        self.skipped: list[dict] = []
        self.truncated = 0

    def add(self, source: str, target: str) -> None:
        if self.max_chars is not None and max(len(source), len(target)) > self.max_chars:
            source, target = source[:self.max_chars], target[:self.max_chars]
            self.truncated += 1
        self.sources.append(source)
        self.targets.append(target)

    def skip(self, path: str | os.PathLike, line: int, reason: str) -> None:
        self.skipped.append({"path": str(path), "line": line, "reason": reason})

    def source(self, skipped: list[dict]) -> ParallelSource:
        skipped = sorted(skipped + self.skipped, key=lambda entry: entry["line"])
        return ParallelSource(self.sources, self.targets, skipped, self.truncated)


def load_parallel_files(source_path: str | os.PathLike, target_path: str | os.PathLike,
                        max_chars: int | None = None) -> ParallelSource:
    """Line i of `source_path` translates line i of `target_path` (plain text or .gz).

    Different line counts raise ValueError (the files are not aligned); lines empty or not
    UTF-8 on either side are skipped with their pair.
    """
    source_path, target_path = Path(source_path), Path(target_path)
    sources, source_skipped = _read_lines(source_path)
    targets, target_skipped = _read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(f"Parallel files must have the same number of lines; received {len(sources)} lines "
                         f"in {source_path} and {len(targets)} lines in {target_path}.")
    collector = _Collector(max_chars)
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        if source is None or target is None:
            continue  # already listed by _read_lines
        source, target = source.strip(), target.strip()
        if not source or not target:
            side = source_path if not source else target_path
            collector.skip(side, number, "empty line")
            continue
        collector.add(source, target)
    return collector.source(source_skipped + target_skipped)


def load_tsv(path: str | os.PathLike, source_column: int = 0, target_column: int = 1,
             max_chars: int | None = None) -> ParallelSource:
    """Tab-separated pairs, e.g. Anki/Tatoeba `deu.txt` ("Go.\\tGeh.\\tCC-BY 2.0 ...").

    Extra columns are ignored. Lines with too few columns or an empty text in either
    column are skipped (so are Anki's "#separator:tab"-style header lines: too few columns).
    """
    path = Path(path)
    lines, skipped = _read_lines(path)
    needed = max(source_column, target_column) + 1
    collector = _Collector(max_chars)
    for number, line in enumerate(lines, start=1):
        if line is None:
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            collector.skip(path, number, f"{len(fields)} tab-separated column(s), expected at least {needed}")
            continue
        source, target = fields[source_column].strip(), fields[target_column].strip()
        if not source or not target:
            collector.skip(path, number, f"empty {'source' if not source else 'target'} column")
            continue
        collector.add(source, target)
    return collector.source(skipped)


def multi30k_root(data_root: str | os.PathLike) -> Path:
    return Path(data_root) / "multi30k" / "raw"


def load_multi30k(data_root: str | os.PathLike, source_lang: str = "de", target_lang: str = "en",
                  max_chars: int | None = None) -> dict[str, ParallelSource]:
    """Multi30k task 1 (raw text): {"train": 29,000, "val": 1,014, "test": 1,000} pairs.

    Reads `<data_root>/multi30k/raw/{train,val,test_2016_flickr}.{en,de}.gz`; "test" is
    test_2016_flickr, on which published Multi30k BLEU scores are reported. Either
    direction (`source_lang`, `target_lang` in {"de", "en"}).
    """
    if {source_lang, target_lang} != set(MULTI30K_LANGUAGES):
        raise ValueError(f"Multi30k pairs English and German; expected source_lang/target_lang 'de'/'en' or "
                         f"'en'/'de'; received source_lang={source_lang!r}, target_lang={target_lang!r}.")
    root = multi30k_root(data_root)
    splits = {}
    for split, stem in MULTI30K_SPLITS.items():
        paths = [root / f"{stem}.{lang}.gz" for lang in (source_lang, target_lang)]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(
                    f"Multi30k file {path} not found. Put the raw files {{train,val,test_2016_flickr}}.{{en,de}}.gz "
                    "(github.com/multi30k/dataset, data/task1/raw) under <data-root>/multi30k/raw/. "
                    f"{fetch_hint('multi30k')}")
        splits[split] = load_parallel_files(*paths, max_chars=max_chars)
    return splits
