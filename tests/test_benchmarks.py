"""The benchmarks' shared pieces (their timings are never asserted)."""

import numpy as np
import pytest

from benchmarks import classification, common, detection, seq2seq


def test_both_benchmarks_share_the_common_flags():
    for module, extra in ((classification, []), (detection, ["--image-size", "320"])):
        args = module.parse_args(["--images", "8", "--epochs", "3", "--no-peer", *extra])
        assert (args.images, args.epochs, args.no_peer, args.precision) == (8, 3, True, "auto")
    with pytest.raises(SystemExit):
        classification.parse_args(["--epochs", "1"])


def test_seq2seq_flags():
    args = seq2seq.parse_args(["--size", "small", "--sentences", "128", "--batch-size", "32", "--epochs", "3",
                               "--decode-sentences", "8", "--no-peer", "--torch-compile", "--backend", "jax"])
    assert (args.size, args.sentences, args.batch_size, args.epochs, args.decode_sentences) == ("small", 128, 32, 3, 8)
    assert (args.no_peer, args.torch_compile, args.backend, args.precision) == (True, True, "jax", "auto")
    assert args.decode_length == 20 and args.json is None
    for bad in (["--epochs", "1"], ["--size", "huge"], ["--decode-length", "65"]):
        with pytest.raises(SystemExit):
            seq2seq.parse_args(bad)


def test_seq2seq_synthetic_data_is_eos_terminated_padded_and_in_range():
    data = seq2seq.synthetic_data(200, vocab_size=50, length=32, seed=3)
    assert set(data) == {"source", "target_in", "target_out"}
    for ids in data.values():
        assert ids.shape == (200, 32) and ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < 50
    positions = np.arange(32)[None, :]
    for key in ("source", "target_out"):
        ids = data[key]
        is_eos = ids == seq2seq.EOS_ID
        assert (is_eos.sum(axis=1) == 1).all()  # exactly one eos per sentence
        lengths = is_eos.argmax(axis=1) + 1  # eos included
        assert lengths.min() >= 2 and 10 <= lengths.mean() <= 20
        words = positions < lengths[:, None] - 1
        assert (ids[words] >= seq2seq.FIRST_WORD_ID).all()  # no specials among the words
        assert (ids[positions >= lengths[:, None]] == seq2seq.PAD_ID).all()  # padded after eos
    target_in, target_out = data["target_in"], data["target_out"]
    assert (target_in[:, 0] == seq2seq.BOS_ID).all()
    assert ((target_in != seq2seq.PAD_ID) == (target_out != seq2seq.PAD_ID)).all()  # same lengths
    shifted = np.where(target_out[:, :-1] == seq2seq.EOS_ID, seq2seq.PAD_ID, target_out[:, :-1])
    assert (target_in[:, 1:] == shifted).all()  # teacher forcing: bos + the target's words
    np.testing.assert_array_equal(seq2seq.synthetic_data(5, seed=3)["source"],
                                  seq2seq.synthetic_data(5, seed=3)["source"])


def test_summarize_leaves_the_warm_up_epoch_out():
    summary = common.summarize([10.0, 2.0, 2.0], images_per_epoch=100)
    assert summary["first_epoch_s"] == 10.0 and summary["images_per_s"] == pytest.approx(50.0)
    assert set(common.hardware()) == {"cpu", "cpu_cores", "gpu"}
    tokens = seq2seq.tokens_summary([10.0, 2.0, 2.0], tokens_per_epoch=100)
    assert tokens["tokens_per_s"] == pytest.approx(50.0) and "images_per_s" not in tokens
    assert seq2seq.tokens_summary([9.0, 4.0, 1.0], 100)["best_epoch_tokens_per_s"] == pytest.approx(100.0)


@pytest.mark.slow
@pytest.mark.backend
def test_profile_task_writes_its_summary_profile_and_top(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "benchmarks/profile_task.py", "classification", "--preset", "smoke",
                           "--set", "train.epochs=2", "--out", str(tmp_path)], cwd=repo, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    folder = next(tmp_path.iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["task"] == "classification" and summary["train_steps_per_s"] > 0
    assert summary["stream_alone"]["batches"] >= 50 and summary["top_own_time"]
    assert (folder / "profile.prof").stat().st_size > 0 and "by own time" in (folder / "top.txt").read_text()
