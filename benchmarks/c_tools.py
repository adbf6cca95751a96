"""The original C tools as peers in benchmarks/embeddings.py: Mikolov's word2vec and
Stanford's GloVe, trained on the very corpus our run and gensim train on.

word2vec (`--c-tool`): its C source (`word2vec/includes/word2vec.c`, the Google Code
original) ships in the PyPI sdist `word2vec==0.11.1`. `build_word2vec` downloads that sdist
with pip into a temporary folder (or takes `--word2vec-source`: the sdist or word2vec.c
itself, for a machine without a network), and compiles it once into the tools folder
(~/.cache/kts/tools, or --tools-dir):

    gcc word2vec.c -o <tools>/word2vec-0.11.1/word2vec -O3 -march=native -funroll-loops \
        -pthread -Wno-unused-result -lm

(the sdist's own Makefile flags; -march=native: the binary is for this CPU). No pip or gcc:
a one-line `ToolUnavailable` and the script goes on without that peer.

The corpus file (`write_corpus`) holds our corpus as it is encoded (lower-cased, punctuation
tokens dropped, split at . ! ?, out-of-vocabulary words removed: exactly the word lists gensim
gets), one sentence per line. The C tool reads its vocabulary from a file the script writes
from the same corpus (`write_vocab`: "</s> <lines>" first, the C tool's sentence token, then
"word count" lines), so the vocabulary is identical and its timed run is training (plus
writing its text vectors, under a second), as gensim's `train()` and our epochs are.

Settings (`word2vec_command`): -cbow 0/1, -size, -window, -negative (-hs 1 -negative 0 for
`model.objective=hierarchical`), -sample, -min-count, -iter = epochs, -alpha (given: the C
tool's CBOW default would be 0.05), -threads = --workers, text output. What still differs:

- min-count: the same rule everywhere (a word is kept when it occurs >= min_count times:
  C `cn < min_count` dropped, gensim `count >= min_count`, ours `counts >= min_count`).
- subsampling: the same formula, P(keep) = (sqrt(f / (s N)) + 1) s N / f (word2vec.c,
  gensim's `(sqrt(v / t) + 1) * t / v`, our `keep_probabilities`), but the C tool's N also
  counts its "</s>" sentence tokens (one per line, ~5% more on the NLTK kit), so its
  threshold s N is that much larger and it keeps frequent words slightly more often.
- the learning rate decays linearly to alpha x 1e-4 (not to `model.min_alpha`); sentences
  are cut at 1,000 words (ours and gensim: 10,000); no seed (its threads' random streams start
  from the thread number; with more than one thread runs differ).

GloVe (`--glove-tool DIR`): no registry package reachable here ships a buildable Stanford
GloVe (`apt-cache search glove`: none; PyPI `glovpy` git-clones it at install time,
`glove-py` is a C++ re-implementation; `crucyble` 0.1.0.dev4 ships an old copy of the C files
with their `main()` replaced by library functions and two bugs that spoil a run: its cooccur
writes its log after closing it, into the co-occurrence output, and an empty overflow chunk
writes a (0, 0, 0) record that its glove.c, older than Stanford's fix, does not skip: NaN
vectors). With the source (stanfordnlp/GloVe on GitHub,
`make` builds build/), pass `--glove-tool GloVe/build`: `run_glove` runs vocab_count,
cooccur, shuffle and glove on the same corpus file with the preset's settings (window,
x_max, alpha, eta, dim, epochs, threads = --workers) and reads vectors.txt.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

WORD2VEC_SDIST = "word2vec==0.11.1"
WORD2VEC_MEMBER = "word2vec/includes/word2vec.c"
CFLAGS = ("-O3", "-march=native", "-funroll-loops", "-pthread", "-Wno-unused-result")
SENTENCE_TOKEN = "</s>"  # word2vec.c's token for a line end (a vocabulary entry, no real word)
C_MAX_WORD_BYTES = 99  # word2vec.c truncates longer words (MAX_STRING 100)
C_MAX_SENTENCE = 1000  # word2vec.c cuts longer sentences (MAX_SENTENCE_LENGTH)
GLOVE_STAGES = ("vocab_count", "cooccur", "shuffle", "glove")


class ToolUnavailable(RuntimeError):
    """A C tool cannot be built or found here; the message is one line saying why."""


def default_tools_dir() -> Path:
    return Path(os.environ.get("KTS_TOOLS_DIR", Path.home() / ".cache" / "kts" / "tools"))


# --- the corpus and vocabulary files ---------------------------------------------------------


def write_corpus(sentences: Iterable[list[str]], path: str | os.PathLike) -> dict:
    """One sentence per line, words separated by one space (UTF-8). Returns what the C tools
    will see: lines, words, words longer than they keep, sentences longer than they keep. A
    word holding whitespace cannot be written (it would become two words): ValueError."""
    path = Path(path)
    stats = {"lines": 0, "words": 0, "long_words": 0, "long_sentences": 0}
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for number, sentence in enumerate(sentences, start=1):
            if not sentence:
                continue
            for word in sentence:
                if not word or any(ch.isspace() for ch in word):
                    raise ValueError(f"Sentence {number} holds the word {word!r} (empty or with whitespace), "
                                     f"which a one-sentence-per-line corpus file cannot hold.")
                stats["long_words"] += len(word.encode("utf-8")) > C_MAX_WORD_BYTES
            f.write(" ".join(sentence) + "\n")
            stats["lines"] += 1
            stats["words"] += len(sentence)
            stats["long_sentences"] += len(sentence) > C_MAX_SENTENCE
    if not stats["words"]:
        raise ValueError(f"No words to write to {path}: the corpus is empty.")
    return stats


def write_vocab(words: list[str], counts, lines: int, path: str | os.PathLike) -> Path:
    """word2vec.c's -read-vocab file: "</s> <lines>" (its sentence token, counted once per
    line, as it counts it when it learns the vocabulary itself), then "word count" lines."""
    path = Path(path)
    rows = [f"{SENTENCE_TOKEN} {int(lines)}"] + [f"{word} {int(count)}" for word, count in zip(words, counts)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def corpus_counts(corpus) -> np.ndarray:
    """Occurrences of each vocabulary word in the encoded corpus (what the file holds)."""
    return np.bincount(corpus.tokens, minlength=corpus.vocab_size)


def read_vectors(path: str | os.PathLike, kind: str = "word2vec"):
    """A C tool's text vectors as `WordVectors`, without its pseudo-words (word2vec's "</s>",
    GloVe's "<unk>"). The header/row checks are `WordVectors.load`'s."""
    from tasks.embeddings.vectors import WordVectors

    loaded = WordVectors.load(path, kind)
    keep = [i for i, word in enumerate(loaded.words) if word not in (SENTENCE_TOKEN, "<unk>")]
    return WordVectors([loaded.words[i] for i in keep], loaded.vectors[keep])


# --- word2vec: build and run -----------------------------------------------------------------


def word2vec_source(source: Path | None, scratch: Path) -> bytes:
    """word2vec.c's text: from `source` (an sdist tarball or the .c file), else the sdist
    downloaded with pip into `scratch`."""
    if source is None:
        pip = [sys.executable, "-m", "pip"]
        if subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
            raise ToolUnavailable(f"pip is not available to {sys.executable} (needed to download {WORD2VEC_SDIST}); "
                                  "give --word2vec-source word2vec-0.11.1.tar.gz")
        command = [*pip, "download", "--no-deps", "--no-binary", ":all:", WORD2VEC_SDIST, "-d", str(scratch)]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(scratch.glob("word2vec-*.tar.gz"))
        if done.returncode != 0 or not found:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ToolUnavailable(f"`pip download {WORD2VEC_SDIST}` failed ({last[:200]}); give --word2vec-source")
        source = found[0]
    source = Path(source)
    if not source.is_file():
        raise ToolUnavailable(f"word2vec source {source} not found (expected the {WORD2VEC_SDIST} sdist or word2vec.c)")
    if source.suffix == ".c":
        return source.read_bytes()
    try:
        with tarfile.open(source) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + WORD2VEC_MEMBER)), None)
            if member is None:
                raise ToolUnavailable(f"{source} holds no {WORD2VEC_MEMBER}")
            return tar.extractfile(member).read()
    except tarfile.TarError as error:
        raise ToolUnavailable(f"{source} is not a readable tarball ({error})") from None


def build_command(source: Path, binary: Path) -> list[str]:
    return ["gcc", str(source), "-o", str(binary), *CFLAGS, "-lm"]


def build_word2vec(tools_dir: Path | None = None, source: Path | None = None, log=print) -> Path:
    """The word2vec binary, built once into `tools_dir`/word2vec-0.11.1/ (kept there with
    its source and build.txt, the command that built it)."""
    folder = Path(tools_dir or default_tools_dir()) / WORD2VEC_SDIST.replace("==", "-")
    binary = folder / "word2vec"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    if shutil.which("gcc") is None:
        raise ToolUnavailable("gcc not found: the word2vec C tool cannot be built here (apt-get install gcc)")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kts-word2vec-") as scratch:
        text = word2vec_source(source, Path(scratch))
        source_file = folder / "word2vec.c"
        source_file.write_bytes(text)
        partial = folder / f".word2vec.{os.getpid()}"
        command = build_command(source_file, partial)
        log("building the word2vec C tool: " + " ".join(command))
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            raise ToolUnavailable(f"gcc failed to build {source_file}: {done.stderr.strip()[-300:]}")
        os.replace(partial, binary)
    (folder / "build.txt").write_text(" ".join(build_command(source_file, binary)) + "\n")
    return binary


def word2vec_command(binary: Path, corpus_file: Path, vocab_file: Path, output: Path, config, threads: int) -> list:
    model = config.model
    hierarchical = model.objective == "hierarchical"
    settings = {"-train": corpus_file, "-read-vocab": vocab_file, "-output": output,
                "-cbow": int(model.algorithm == "cbow"), "-size": model.dim, "-window": model.window,
                "-negative": 0 if hierarchical else model.negative, "-hs": int(hierarchical),
                "-sample": model.sample, "-min-count": config.data.min_count, "-iter": config.train.epochs,
                "-alpha": model.alpha, "-threads": threads, "-binary": 0, "-debug": 2}
    return [str(binary)] + [str(part) for pair in settings.items() for part in pair]


def run_word2vec(binary: Path, corpus_file: Path, vocab_file: Path, config, threads: int, workdir: Path) -> dict:
    """Trains the C tool; seconds = its process's wall time (training + writing vectors)."""
    if config.model.algorithm not in ("skipgram", "cbow"):
        raise ValueError(f"The word2vec C tool trains skipgram or cbow. Received: {config.model.algorithm}")
    output = workdir / "word2vec-c.txt"
    command = word2vec_command(binary, corpus_file, vocab_file, output, config, threads)
    with open(workdir / "word2vec-c.log", "w+b") as log:
        started = time.perf_counter()
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - started
        log.seek(0)
        tail = log.read().decode("utf-8", errors="replace").replace("\r", "\n").strip()[-400:]
    if code != 0 or not output.is_file():
        raise RuntimeError(f"the word2vec C tool failed (exit {code}): {tail}")
    vectors = read_vectors(output)
    return {"seconds": seconds, "vocab": len(vectors), "vectors": vectors, "command": " ".join(command),
            "log_tail": tail[-200:]}


# --- GloVe: run a built Stanford GloVe -------------------------------------------------------


def glove_binaries(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    binaries = {name: folder / name for name in GLOVE_STAGES}
    missing = [name for name, path in binaries.items() if not (path.is_file() and os.access(path, os.X_OK))]
    if missing:
        raise ToolUnavailable(f"{folder} lacks the GloVe program(s) {', '.join(missing)} (expected a built "
                              "GloVe: its build/ folder after `make`)")
    return binaries


def glove_commands(binaries: dict, workdir: Path, config, threads: int, memory_gb: float = 2.0) -> list:
    """(stage, argv, stdin file, stdout file) for Stanford's four programs, in order."""
    model, vocab = config.model, workdir / "glove-vocab.txt"
    cooccurrences, shuffled = workdir / "cooccurrence.bin", workdir / "cooccurrence.shuf.bin"
    corpus = workdir / "corpus.txt"
    return [
        ("vocab_count", [binaries["vocab_count"], "-min-count", config.data.min_count, "-verbose", 1],
         corpus, vocab),
        ("cooccur", [binaries["cooccur"], "-memory", memory_gb, "-vocab-file", vocab, "-verbose", 1,
                     "-window-size", model.window, "-symmetric", 1], corpus, cooccurrences),
        ("shuffle", [binaries["shuffle"], "-memory", memory_gb, "-verbose", 1], cooccurrences, shuffled),
        ("glove", [binaries["glove"], "-save-file", workdir / "glove-vectors", "-threads", threads,
                   "-input-file", shuffled, "-x-max", model.x_max, "-alpha", model.glove_alpha,
                   "-eta", model.glove_learning_rate, "-iter", config.train.epochs, "-vector-size", model.dim,
                   "-binary", 0, "-model", 2, "-vocab-file", vocab, "-verbose", 1], None, None),
    ]


def run_glove(folder: Path, corpus_file: Path, config, threads: int, workdir: Path) -> dict:
    """Stanford GloVe's four stages on `corpus_file` (copied to workdir/corpus.txt);
    seconds = all four, `glove_seconds` the training stage alone."""
    binaries = glove_binaries(folder)
    if Path(corpus_file).resolve() != (workdir / "corpus.txt").resolve():
        shutil.copyfile(corpus_file, workdir / "corpus.txt")
    stages = {}
    for stage, argv, stdin, stdout in glove_commands(binaries, workdir, config, threads):
        with (open(stdin, "rb") if stdin else io.BytesIO()) as source, \
                (open(stdout, "wb") if stdout else open(workdir / f"{stage}.out", "wb")) as sink:
            started = time.perf_counter()
            done = subprocess.run([str(part) for part in argv], stdin=source if stdin else subprocess.DEVNULL,
                                  stdout=sink, stderr=subprocess.PIPE, cwd=workdir)
            stages[stage] = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"GloVe's {stage} failed (exit {done.returncode}): "
                               f"{done.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    vectors = read_vectors(workdir / "glove-vectors.txt", kind="glove")
    return {"seconds": sum(stages.values()), "glove_seconds": stages["glove"], "stage_seconds": stages,
            "vocab": len(vectors), "vectors": vectors}
