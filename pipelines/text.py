"""Tokenizers for text tasks: subwords (SentencePiece) and characters, one interface.

Both map text to a `list[int]` and back and agree on the special ids:

    pad=0, unk=1, bos=2, eos=3

`encode` never adds bos/eos (the seq2seq ops in `pipelines.seq_ops` do), and `decode` drops
pad/bos/eos, so `decode(encode(text))` gives the text back up to the tokenizer's
normalisation (see each class). Each tokenizer saves itself into a folder (one file,
written atomically) and `load(folder)` restores it with identical ids. Both are picklable,
so grain worker processes can receive the ops that hold them.

Joint (shared source+target) or separate vocabularies are a matter of which texts go to
`train`/`build`: pass both sides for one joint vocabulary, or train one tokenizer per side.
"""

from __future__ import annotations

import collections
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece

from shared.io import atomic_write_bytes, atomic_write_text

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>")
UNKNOWN_TEXT = "\u2047"  # what an unk id decodes to (as SentencePiece does): " ⁇ "


class SentencePieceTokenizer:
    """Subword tokenizer backed by a SentencePiece model (`<folder>/spm.model`).

    Normalisation is SentencePiece's default `nmt_nfkc`: NFKC (so a no-break space becomes a
    space), runs of whitespace collapsed to one space, leading/trailing whitespace removed.
    `decode(encode(s)) == tokenizer.normalize(s)` holds for every text made of characters
    seen in training; unseen characters come back as " ⁇ " (no byte fallback).
    """

    filename = "spm.model"

    def __init__(self, model_proto: bytes):
        self._proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self._proto)
        specials = (self._processor.pad_id(), self._processor.unk_id(),
                    self._processor.bos_id(), self._processor.eos_id())
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise ValueError(f"Expected special ids pad/unk/bos/eos = (0, 1, 2, 3); received {specials}.")

    @classmethod
    def train(cls, texts: Iterable[str], folder: str | os.PathLike | None = None, vocab_size: int = 8000,
              model_type: str = "bpe", character_coverage: float = 1.0, seed: int = 0,
              max_sentences: int = 0) -> SentencePieceTokenizer:
        """Trains in-process on `texts` (any iterable, streamed) and saves into `folder` if given.

        Deterministic for given texts and arguments: one training thread, no input
        sampling unless `max_sentences` > 0 (then a seeded sample of that many sentences).
        """
        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"Expected model_type 'bpe' or 'unigram'; received model_type={model_type!r}.")
        model = io.BytesIO()
        sentencepiece.set_random_generator_seed(seed)  # process-wide; only sampling uses it
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, character_coverage=character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=max_sentences, shuffle_input_sentence=max_sentences > 0,
            num_threads=1, minloglevel=2)
        tokenizer = cls(model.getvalue())
        if folder is not None:
            tokenizer.save(folder)
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def encode(self, text: str) -> list[int]:
        return self._processor.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """`encode` over many texts in one native call (faster than a Python loop)."""
        return self._processor.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self._processor.decode([int(i) for i in ids])

    def normalize(self, text: str) -> str:
        """The text as the model sees it (what `decode(encode(text))` returns)."""
        normalized = self._processor.normalize(text)  # spaces as "\u2581", one dummy prefix
        return normalized.removeprefix("\u2581").replace("\u2581", " ")

    def pieces(self, text: str) -> list[str]:
        return self._processor.encode(text, out_type=str)

    def save(self, folder: str | os.PathLike) -> Path:
        return atomic_write_bytes(Path(folder) / self.filename, self._proto)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SentencePieceTokenizer:
        path = Path(folder) / cls.filename
        if not path.is_file():
            raise FileNotFoundError(f"No SentencePiece model at {path}; train one with "
                                    "SentencePieceTokenizer.train(texts, folder).")
        return cls(path.read_bytes())

    def __getstate__(self) -> dict:
        return {"model_proto": self._proto}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_proto"])

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(vocab_size={self.vocab_size})"


class CharTokenizer:
    """One id per character (after the four special ids); no normalisation at all.

    Characters outside the vocabulary map to unk and are counted in `unknown_count` (per
    process: a copy in a grain worker counts on its own). `decode` turns unk (and any id
beyond the vocabulary) into "⁇".
    """

    filename = "chars.json"
    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, characters: Sequence[str]):
        characters = list(characters)
        if any(len(c) != 1 for c in characters) or len(set(characters)) != len(characters):
            raise ValueError("Expected distinct single characters; received "
                             f"{[c for c in characters if len(c) != 1][:5] or 'duplicates'}.")
        self.characters = characters
        self._ids = {c: i + len(SPECIAL_TOKENS) for i, c in enumerate(characters)}
        self.unknown_count = 0

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> CharTokenizer:
        """Vocabulary of the characters seen at least `min_count` times, sorted by code point."""
        counts = collections.Counter(c for text in texts for c in text)
        return cls(sorted(c for c, n in counts.items() if n >= min_count))

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.characters)

    def encode(self, text: str) -> list[int]:
        ids = [self._ids.get(c, UNK_ID) for c in text]
        self.unknown_count += ids.count(UNK_ID)
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        offset = len(SPECIAL_TOKENS)
        return "".join(self.characters[i - offset] if offset <= i < self.vocab_size else UNKNOWN_TEXT
                       for i in map(int, ids) if i == UNK_ID or i >= offset)

    def normalize(self, text: str) -> str:
        return text

    def save(self, folder: str | os.PathLike) -> Path:
        payload = {"type": "char", "special_tokens": list(SPECIAL_TOKENS), "characters": self.characters}
        return atomic_write_text(Path(folder) / self.filename, json.dumps(payload, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> CharTokenizer:
        path = Path(folder) / cls.filename
        if not path.is_file():
            raise FileNotFoundError(f"No character vocabulary at {path}; build one with "
                                    "CharTokenizer.build(texts).save(folder).")
        return cls(json.loads(path.read_text(encoding="utf-8"))["characters"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unknown_count={self.unknown_count})"
