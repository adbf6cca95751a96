"""Text data layer for seq2seq: Multi30k, parallel/TSV loaders, tokenizers, dates, seq ops."""

from __future__ import annotations

import datetime
import gzip
import pickle
import re

import numpy as np
import pytest

from pipelines import builder
from pipelines.datasets.dates import MONTHS, WEEKDAYS, dates_splits, generate_dates
from pipelines.datasets.parallel import ParallelSource, load_multi30k, load_parallel_files, load_tsv
from pipelines.seq_ops import PadToLength, Tokenize, bucket_by_length, pad_batch
from pipelines.text import CharTokenizer, SentencePieceTokenizer

FIRST_DE = "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."
FIRST_EN = "Two young, White males are outside near many bushes."


@pytest.fixture(scope="module")
def multi30k(data_root):
    if not (data_root / "multi30k" / "raw").is_dir():
        pytest.skip("multi30k not in the data root")
    return load_multi30k(data_root)


@pytest.fixture(scope="module")
def spm_slice(multi30k, tmp_path_factory):
    train = multi30k["train"]
    texts = train.sources[:2000] + train.targets[:2000]  # joint de+en vocabulary
    folder = tmp_path_factory.mktemp("spm")
    return SentencePieceTokenizer.train(texts, folder, vocab_size=500), texts, folder


def test_multi30k_counts_alignment_and_direction(multi30k, data_root):
    assert {name: len(split) for name, split in multi30k.items()} == {"train": 29000, "val": 1014, "test": 1000}
    assert all(not split.skipped and split.truncated == 0 for split in multi30k.values())
    assert multi30k["train"][0] == {"source_text": FIRST_DE, "target_text": FIRST_EN}
    assert multi30k["train"].pair(-1) == (multi30k["train"].sources[-1], multi30k["train"].targets[-1])
    reverse = load_multi30k(data_root, source_lang="en", target_lang="de")
    assert reverse["val"].sources == multi30k["val"].targets and reverse["test"][0]["target_text"] == \
        multi30k["test"][0]["source_text"]
    with pytest.raises(ValueError, match="source_lang='de', target_lang='de'"):
        load_multi30k(data_root, "de", "de")


def test_multi30k_missing_names_path_and_flags(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"multi30k/raw/train\.de\.gz.*--data-root.*KTS_DATA"):
        load_multi30k(tmp_path)


def test_sentencepiece_round_trip_save_load_and_specials(spm_slice):
    tokenizer, texts, folder = spm_slice
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.vocab_size == 500 and (folder / "spm.model").is_file()
    # Round trip holds after SentencePiece's nmt_nfkc normalisation (NFKC, whitespace collapsed and stripped).
    assert all(tokenizer.decode(tokenizer.encode(text)) == tokenizer.normalize(text) for text in texts)
    assert tokenizer.normalize("  Ein  Hund\u00a0läuft. ") == "Ein Hund läuft."
    ids = tokenizer.encode_batch(texts[:50])
    assert ids == [tokenizer.encode(text) for text in texts[:50]]
    assert all(0 not in row and 2 not in row and 3 not in row for row in ids)  # encode adds no specials
    assert tokenizer.decode([2] + ids[0] + [3, 0, 0]) == tokenizer.decode(ids[0])
    loaded = SentencePieceTokenizer.load(folder)
    assert loaded.encode_batch(texts[:50]) == ids
    assert pickle.loads(pickle.dumps(tokenizer)).encode_batch(texts[:50]) == ids
    assert SentencePieceTokenizer.train(texts, None, vocab_size=500).encode_batch(texts[:50]) == ids  # deterministic


def test_sentencepiece_unigram_and_errors(tmp_path):
    texts = [f"the {word} sat on the mat number {n}" for n in range(30) for word in ("cat", "dog", "bird")]
    tokenizer = SentencePieceTokenizer.train(texts, vocab_size=30, model_type="unigram")
    assert tokenizer.decode(tokenizer.encode(texts[7])) == texts[7]
    with pytest.raises(ValueError, match="model_type='wordpiece'"):
        SentencePieceTokenizer.train(texts, model_type="wordpiece")
    with pytest.raises(FileNotFoundError, match="spm.model"):
        SentencePieceTokenizer.load(tmp_path)


def test_char_tokenizer_counts_unknowns_and_saves(tmp_path):
    tokenizer = CharTokenizer.build(["abca", "bd"], min_count=2)  # d and c are rare
    assert tokenizer.characters == ["a", "b"] and tokenizer.vocab_size == 6
    ids = tokenizer.encode("abcdz")
    assert ids == [4, 5, 1, 1, 1] and tokenizer.unknown_count == 3
    assert tokenizer.decode([2] + ids + [3, 0]) == "ab\u2047\u2047\u2047"
    tokenizer.save(tmp_path)
    assert CharTokenizer.load(tmp_path).encode("ba") == [5, 4]


def test_parallel_files_skip_empty_and_reject_misaligned(tmp_path):
    source, target = tmp_path / "a.de", tmp_path / "a.en"
    source.write_text("Hallo\n\nZwei\r\nDrei\n", encoding="utf-8")
    target.write_text("Hello\nOne\n  \nThree\u2028more\n", encoding="utf-8")  # U+2028 is not a line break here
    pairs = load_parallel_files(source, target)
    assert [pairs.pair(i) for i in range(len(pairs))] == [("Hallo", "Hello"), ("Drei", "Three\u2028more")]
    assert [(entry["path"], entry["line"]) for entry in pairs.skipped] == [(str(source), 2), (str(target), 3)]
    with gzip.open(tmp_path / "b.en.gz", "wt", encoding="utf-8") as f:
        f.write("one\ntwo\n")
    with pytest.raises(ValueError, match=r"4 lines in .*a\.de and 2 lines in .*b\.en\.gz"):
        load_parallel_files(source, tmp_path / "b.en.gz")


def test_tsv_counts_malformed_lines(tmp_path):
    path = tmp_path / "deu.txt"
    path.write_bytes(b"#separator:tab\nGo.\tGeh.\tCC-BY 2.0 #1\nbroken line\n\tleer\nHi.\tHallo!\n"
                     b"bad \xff\tbyte\nLong sentence.\tLanger Satz.\n")
    pairs = load_tsv(path, max_chars=10)
    assert [pairs.pair(i) for i in range(len(pairs))] == [("Go.", "Geh."), ("Hi.", "Hallo!"),
                                                          ("Long sente", "Langer Sat")]
    assert [entry["line"] for entry in pairs.skipped] == [1, 3, 4, 6] and pairs.truncated == 1
    assert "not UTF-8" in pairs.skipped[-1]["reason"]
    reverse = load_tsv(path, source_column=1, target_column=0)
    assert reverse.pair(0) == ("Geh.", "Go.")


def test_dates_weekdays_iso_determinism_and_disjoint_splits():
    pairs = generate_dates(3000, seed=1)
    assert pairs == generate_dates(3000, seed=1) and pairs != generate_dates(3000, seed=2)
    weekday_names = "|".join(WEEKDAYS + tuple(day[:3] for day in WEEKDAYS))
    checked = 0
    for text, iso in pairs:
        date = datetime.date.fromisoformat(iso)  # every target is a valid ISO date
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso) and 1900 <= date.year <= 2100
        match = re.match(rf"({weekday_names})\b", text, re.IGNORECASE)
        if match:
            checked += 1
            assert WEEKDAYS[date.weekday()].lower().startswith(match.group(1).lower()), (text, iso)
        if re.fullmatch(r"\d\d/\d\d/\d\d", text):  # dd/mm/yy, pivot 50
            day, month, year = map(int, text.split("/"))
            assert date == datetime.date(year + (2000 if year < 50 else 1900), month, day)
        elif re.fullmatch(r"\d{1,2}[./]\d{1,2}[./]\d{4}", text):  # day first
            day, month, year = map(int, re.split(r"[./]", text))
            assert date == datetime.date(year, month, day)
        elif not text[0].isdigit() or " " in text:
            assert MONTHS[date.month - 1][:3].lower() in text.lower(), (text, iso)
    assert checked > 300
    assert {text.islower() for text, _ in pairs} == {True, False}
    splits = dates_splits(train=3000, val=200, test=300, seed=0)
    assert {name: len(split) for name, split in splits.items()} == {"train": 3000, "val": 200, "test": 300}
    targets = {name: {iso for _, iso in split} for name, split in splits.items()}
    assert sum(map(len, targets.values())) == 3500  # all distinct, so no target shared between splits
    assert splits == dates_splits(train=3000, val=200, test=300, seed=0)
    with pytest.raises(ValueError, match="73414 days"):
        dates_splits(train=80000)


def _tokenizers():
    source = CharTokenizer.build(["abcdefgh"])
    return source, CharTokenizer.build(["0123456789"])


def test_tokenize_truncation_pad_batch_and_buckets():
    source_tokenizer, target_tokenizer = _tokenizers()
    op = pickle.loads(pickle.dumps(Tokenize(source_tokenizer, target_tokenizer, 4, 5)))
    short = op({"source_text": "abc", "target_text": "0123"})
    assert short["source"].tolist() == [4, 5, 6, 3] and short["truncated"] == 0
    assert short["target_in"].tolist() == [2, 4, 5, 6, 7] and short["target_out"].tolist() == [4, 5, 6, 7, 3]
    long = op({"source_text": "abcd", "target_text": "01"})
    assert long["source"].tolist() == [4, 5, 6, 3] and long["truncated"] == 1 and long["source"].dtype == np.int32
    batch = pad_batch([short, long, op({"source_text": "a", "target_text": ""})], pad_id=0)
    assert batch["source"].shape == (3, 4) and batch["target_in"].shape == (3, 5)
    assert batch["target_out"][2].tolist() == [3, 0, 0, 0, 0] and batch["truncated"].tolist() == [0, 1, 0]
    assert pad_batch([long], multiple=8)["source"].shape == (1, 8)
    padded = PadToLength({"source": 6}, pad_id=0)(short)
    assert padded["source"].tolist() == [4, 5, 6, 3, 0, 0] and padded["target_in"] is short["target_in"]
    lengths = [1, 9, 2, 10, 3, 30, 4, 11]
    batches = bucket_by_length(lengths, batch_size=2, boundaries=[5, 20], seed=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert all(len({int(np.searchsorted([5, 20], lengths[i])) for i in b}) == 1 for b in batches)
    assert [b.tolist() for b in batches] == [b.tolist() for b in bucket_by_length(lengths, 2, [5, 20], seed=3)]
    assert [b.tolist() for b in bucket_by_length(lengths, 2, [5, 20], shuffle=False, drop_remainder=True)] == \
        [[0, 2], [4, 6], [1, 3]]


def test_ops_in_the_builder():
    source_tokenizer, target_tokenizer = _tokenizers()
    source = ParallelSource.from_pairs([("abc" * (i % 3 + 1), "0123"[: i % 4 + 1]) for i in range(12)])
    ops = [Tokenize(source_tokenizer, target_tokenizer, 8, 6),
           PadToLength({"source": 8, "target_in": 6, "target_out": 6})]
    batch = next(iter(builder.train_dataset(source, batch_size=4, seed=0, ops=ops, threads=1)))
    assert batch["source"].shape == (4, 8) and batch["target_out"].shape == (4, 6)
    evaluation = list(builder.eval_dataset(source, batch_size=5, ops=ops, threads=1))
    assert sum(int(b["truncated"].sum()) for b in evaluation) == 4  # "abc" * 3 + eos > 8


def test_bucketed_batches_are_deterministic_resumable_and_padded_to_the_width():
    from pipelines.seq_ops import BucketedBatches

    rng = np.random.default_rng(0)
    examples = [{"source": np.arange(1, n + 1, dtype=np.int32), "target_in": np.ones(m, np.int32),
                 "target_out": np.ones(m, np.int32), "truncated": np.int32(0)}
                for n, m in zip(rng.integers(2, 30, 50), rng.integers(2, 20, 50))]
    batches = BucketedBatches(examples, batch_size=8, seed=3, bucket_width=8)
    epoch = [batches.indices(step) for step in range(batches.steps_per_epoch)]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(50))  # each example once per epoch
    again = BucketedBatches(examples, batch_size=8, seed=3, bucket_width=8)
    step = batches.steps_per_epoch + 2  # second epoch: a new order, the same for a fresh sampler
    np.testing.assert_array_equal(again(step)["source"], batches(step)["source"])
    assert not all(np.array_equal(a, b) for a, b in zip(epoch, [batches.indices(batches.steps_per_epoch + i)
                                                                 for i in range(len(epoch))]))
    for s in range(batches.steps_per_epoch):
        out = batches(s)
        assert out["source"].shape[1] % 8 == 0 and out["target_in"].shape[1] == out["source"].shape[1]
        lengths = batches.lengths[batches.indices(s)]
        assert lengths.max() - lengths.min() < 8  # one bucket per batch
        # Every batch has batch_size rows; a bucket's short last batch is filled with rows of
        # padding only (which the masked loss ignores), after the real ones.
        real = len(batches.indices(s))
        assert all(value.shape[0] == 8 for value in out.values())
        assert (out["target_out"][:real] != 0).any(axis=1).all()
        for key in ("source", "target_in", "target_out"):
            assert not out[key][real:].any()
    assert any(len(batches.indices(s)) < 8 for s in range(batches.steps_per_epoch))  # fillers were tested


def test_decode_batches_have_one_shape_and_cover_every_sentence_once():
    from tasks.seq2seq.data import decode_batches

    rng = np.random.default_rng(0)
    examples = [{"source": rng.integers(4, 50, size=n).astype(np.int32)} for n in rng.integers(1, 13, size=21)]
    batches = list(decode_batches(examples, batch_size=8, width=12))
    assert [source.shape for _, source in batches] == [(8, 12)] * 3
    seen = np.concatenate([indices for indices, _ in batches])
    assert sorted(seen.tolist()) == list(range(21))
    lengths = [len(examples[i]["source"]) for i in seen]
    assert lengths == sorted(lengths)  # length-sorted: a batch's beams end together
    for indices, source in batches:
        for row, index in enumerate(indices):
            ids = examples[index]["source"]
            assert source[row, :len(ids)].tolist() == ids.tolist() and not source[row, len(ids):].any()
    last_indices, last = batches[-1]
    assert len(last_indices) == 5 and (last[5:] == last[0]).all()  # filler rows repeat row 0
    with pytest.raises(ValueError, match="more than the width 4"):
        list(decode_batches(examples, batch_size=8, width=4))
