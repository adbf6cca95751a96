"""Score a trained run on a user's own test files in full (not the run's held-out split).

    kts seq2seq evaluate --workdir RUN --set eval.source_file=test.de --set eval.reference_file=test.en

Line i of eval.source_file is translated and scored against line i of eval.reference_file
(plain text or .gz, UTF-8). Every pair is scored; pairs with an empty or non-UTF-8 line are
skipped, counted and listed. The results go to `evaluation/files/<name>/` (name:
eval.files_name, else the source file's name): results.json (the run's fields: settings
table, BLEU/chrF, samples, ...) and hypotheses.txt, one line per line of the source file
(blank for a skipped line), so it stays line-aligned with the input. The run's own
`evaluation/results.json` is left as it is; when it does not exist yet (a `run` with these
settings), the run's split is evaluated first, so the report has its main figures. The
decoding uses the run's length penalty (the alpha its own evaluation picked, if any).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipelines.datasets import parallel
from shared.io import atomic_write_json, atomic_write_text
from shared.runtime import require_path
from shared.task import Run
from tasks.seq2seq import data as data_lib
from tasks.seq2seq import evaluation
from tasks.seq2seq.training import load


def files_dir(run: Run, name: str) -> Path:
    return run.dir.evaluation / "files" / name


def scored_files(run_dir) -> list[dict]:
    """Every evaluation/files/*/results.json of a run, by name."""
    root = Path(run_dir.evaluation) / "files"
    return [json.loads(path.read_text()) for path in sorted(root.glob("*/results.json"))]


def _aligned(hypotheses: list[str], skipped: list[dict], total_lines: int) -> list[str]:
    """One hypothesis per line of the source file, blank where the pair was skipped (up to
    the last hypothesis when eval.limit cut the scoring short)."""
    skipped_lines, found, lines = {entry["line"] for entry in skipped}, iter(hypotheses), []
    for number in range(1, total_lines + 1):
        hypothesis = "" if number in skipped_lines else next(found, None)
        if hypothesis is None:
            break
        lines.append(hypothesis)
    return lines


def evaluate_files(run: Run) -> dict:
    config = run.config
    eval_config = config.eval
    source_path = require_path(eval_config.source_file, "source text file", "eval.source_file")
    reference_path = require_path(eval_config.reference_file, "reference text file", "eval.reference_file")
    corpus = parallel.load_parallel_files(source_path, reference_path)
    if not len(corpus):
        raise ValueError(f"{source_path} / {reference_path}: no pair to score "
                         f"({len(corpus.skipped)} line(s) skipped, all empty or not UTF-8).")
    name = eval_config.files_name or Path(source_path).name
    if not (run.dir.evaluation / "results.json").exists():
        print(f"seq2seq: {run.dir.evaluation / 'results.json'} does not exist yet; evaluating the run's "
              f"{eval_config.split} split first")
        own = dataclasses.replace(config, eval=dataclasses.replace(eval_config, source_file="",
                                                                   reference_file=""))
        evaluation.evaluate(dataclasses.replace(run, config=own))
        eval_config.length_penalty = own.eval.length_penalty  # the alpha it may have picked
    skipped, total_lines = corpus.skipped, len(corpus) + len({entry["line"] for entry in corpus.skipped})
    if eval_config.limit and eval_config.limit < len(corpus):
        print(f"warning: eval.limit={eval_config.limit}: scoring the first {eval_config.limit} of the "
              f"{len(corpus)} pairs of {source_path} (--set eval.limit=0 scores them all)")
        corpus = evaluation._limited(corpus, eval_config.limit)
    print(f"seq2seq: scoring {len(corpus)} pairs of {source_path} against {reference_path}"
          + (f" ({len(skipped)} line(s) skipped: empty or not UTF-8)" if skipped else ""))
    model = load(run.dir.require_model())
    tokenizers = data_lib.load_tokenizers(config, run.dir)
    scored = evaluation.score_settings(model, corpus, tokenizers, config)
    results = {"name": name, "source_file": str(source_path), "reference_file": str(reference_path),
               "lines": total_lines, "skipped": skipped, **evaluation.summarize(scored, corpus, config)}
    out = files_dir(run, name)
    hypotheses = _aligned(scored["outputs"][eval_config.beam_size][1], skipped, total_lines)
    atomic_write_text(out / "hypotheses.txt", "\n".join(hypotheses) + "\n")
    atomic_write_json(out / "results.json", results)
    print(f"seq2seq {name}: BLEU {results['bleu']:.2f}, chrF {results['chrf']:.2f} ({results['main_setting']}, "
          f"{results['sentences']} pairs) -> {out / 'results.json'}; the run's own "
          f"{run.dir.evaluation / 'results.json'} is unchanged. `kts seq2seq report --workdir "
          f"{run.dir.root}` lists it.")
    return results
