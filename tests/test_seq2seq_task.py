"""Seq2seq end to end through the CLI on a tiny config (the plumbing, not the accuracy):
train -> evaluate -> export -> report, `translate`, other corpora and bad input."""

import json

import numpy as np
import pytest

from shared.cli import main
from shared.testing import run_cli, train_killed_then_resumed

pytestmark = pytest.mark.backend

TINY = ("--preset", "smoke", "--set", "data.dates_train=300", "--set", "data.dates_val=40",
        "--set", "data.dates_test=40", "--set", "train.epochs=1", "--set", "train.batch_size=32",
        "--set", "eval.length_penalty_grid=0,1.5")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("s2s") / "run"
    assert run_cli("seq2seq", "run", workdir, *TINY) == 0
    return workdir


def test_run_writes_every_artifact(tiny_run):
    for name in ("config.json", "model.keras", "training.json", "logs/history.csv",
                 "tokenizer/source/chars.json", "tokenizer/target/chars.json",
                 "evaluation/results.json", "evaluation/hypotheses.txt",
                 "report/report.json", "report/index.html", "report/attention.png"):
        assert (tiny_run / name).exists(), name
    results = json.loads((tiny_run / "evaluation/results.json").read_text())
    assert results["sentences"] == 40
    assert [row["setting"] for row in results["settings"]] == ["greedy", "beam 1", "beam 2"]
    assert results["bleu_signature"].startswith("nrefs:1|case:mixed")
    assert 0.0 <= results["exact_match"] <= 1.0 and len(results["samples"]) == 4
    attention = results["attention"][0]
    assert np.asarray(attention["weights"]).shape == (len(attention["target"]), len(attention["source"]))
    assert len((tiny_run / "evaluation/hypotheses.txt").read_text().splitlines()) == 40


def test_training_logs_validation_bleu_a_function_of_the_model_alone(tiny_run):
    """val_bleu (what `tune` maximises) is in the history: greedy sacreBLEU of the validation
    pairs, the same number when the saved model is scored again (no state besides the weights)."""
    import keras

    from shared import config as config_lib
    from shared.task import RunDir
    from shared.training import read_history
    from tasks.seq2seq import data as data_lib
    from tasks.seq2seq.config import Seq2SeqConfig
    from tasks.seq2seq.evaluation import epoch_bleu

    history = read_history(tiny_run / "logs/history.csv")
    assert len(history["val_bleu"]) == 1 and 0.0 <= history["val_bleu"][0] <= 100.0
    assert (tiny_run / "checkpoints/best.weights.h5").exists()  # monitor=val_bleu
    config = config_lib.load(Seq2SeqConfig, tiny_run / "config.json")
    tokenizers = data_lib.load_tokenizers(config, RunDir(tiny_run))
    val = data_lib.load_splits(config, None)["val"]  # dates: generated, no data root
    examples, _ = data_lib.encode(val, tokenizers, config)
    again = epoch_bleu(val, examples, tokenizers, config)(keras.models.load_model(tiny_run / "model.keras"))
    assert again["val_bleu"] == pytest.approx(history["val_bleu"][0], abs=1e-9)


def test_epoch_bleu_settings_are_checked():
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.seq2seq.config import smoke

    with pytest.raises(ConfigError, match="eval.epoch_bleu_sentences must be >= 0"):
        config_lib.apply_overrides(smoke(), ["eval.epoch_bleu_every=0"])


def test_length_penalty_is_picked_on_validation_and_used_by_every_stage(tiny_run):
    results = json.loads((tiny_run / "evaluation/results.json").read_text())
    sweep = results["length_penalty_sweep"]
    assert [row["alpha"] for row in sweep] == [0.0, 1.5]
    best = max(sweep, key=lambda row: row["bleu"])["alpha"]
    assert results["length_penalty"] == best
    assert json.loads((tiny_run / "config.json").read_text())["eval"]["length_penalty"] == best
    html = (tiny_run / "report/index.html").read_text()
    assert "Length penalty picked on validation" in html and f"length penalty alpha = {best}" in html
    exported = tiny_run / "export/translate.json"
    if exported.exists():  # export needs TF
        assert json.loads(exported.read_text())["length_penalty"] == best


def test_length_penalty_grid_needs_a_split_other_than_the_validation_one():
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.seq2seq.config import smoke

    with pytest.raises(ConfigError, match="eval.split must be test"):
        config_lib.apply_overrides(smoke(), ["eval.length_penalty_grid=0.6,1", "eval.split=val"])
    with pytest.raises(ConfigError, match="must be >= 0"):
        config_lib.apply_overrides(smoke(), ["eval.length_penalty_grid=-1"])


def test_saved_model_translate_signature_agrees_with_keras(tiny_run):
    tf = pytest.importorskip("tensorflow")
    info = json.loads((tiny_run / "export/translate.json").read_text())
    assert info["check"]["same_tokens"] and info["beam_size"] == 2
    assert (tiny_run / "export/tokenizer/source/chars.json").exists()
    loaded = tf.saved_model.load(str(tiny_run / "export/saved_model"))
    out = loaded.signatures["translate"](source_ids=tf.constant([[5, 6, 7, 3, 0], [8, 3, 0, 0, 0]], tf.int32))
    assert out["tokens"].shape == (2, info["max_length"]) and out["scores"].dtype == tf.float32


def test_translate_is_text_in_text_out(tiny_run, tmp_path, capsys):
    assert run_cli("seq2seq", "translate", tiny_run, "3 May 1979", "tuesday march 4 1999",
                   "--out", str(tmp_path)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    saved = json.loads((tmp_path / "translations.json").read_text())
    assert [item["source"] for item in saved] == ["3 May 1979", "tuesday march 4 1999"]
    assert [item["translation"] for item in saved] == lines


def test_translate_rejects_empty_input_and_counts_unknown_characters(tiny_run, capsys):
    assert main(["seq2seq", "translate", "  ", "--workdir", str(tiny_run)]) == 2
    assert "empty text" in capsys.readouterr().err
    assert run_cli("seq2seq", "translate", tiny_run, "3 May 1979 \u2603\u2603") == 0
    assert "2 unknown token(s)" in capsys.readouterr().err


def test_translate_input_that_is_not_utf8_is_an_error_naming_the_line(monkeypatch):
    import io
    import types

    from tasks.seq2seq.predict import read_inputs
    stdin = types.SimpleNamespace(buffer=io.BytesIO(b"3 May 1979\n" + b"\xff\xfe date\n"))
    monkeypatch.setattr("sys.stdin", stdin)
    with pytest.raises(ValueError, match=r"standard input line 2 is not UTF-8 .*0xff at position 0"):
        read_inputs(["-"])
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO("3 Mai 1979\r\n\r\nÄ\n".encode())))
    assert read_inputs(["-"]) == ["3 Mai 1979", "", "Ä"]  # blank lines kept: output stays line-aligned
    with pytest.raises(ValueError, match="input 2 of 2 is not UTF-8"):
        read_inputs(["3 May 1979", "\udcff\udcfe"])  # how Python hands over undecodable argv bytes


def test_a_tsv_corpus_trains_and_its_bad_lines_are_counted(tmp_path):
    lines = [f"{n} apples\t{n} Äpfel\tCC-BY" for n in range(60)] + ["no tab here", "\tempty source", "@@\t@@"]
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    workdir = tmp_path / "run"
    assert run_cli("seq2seq", "train", workdir, "--preset", "smoke", "--set", "data.source=tsv",
                   "--set", f"data.path={tsv}", "--set", "data.validation_fraction=0.1",
                   "--set", "train.epochs=1", "--set", "train.batch_size=16") == 0
    training = json.loads((workdir / "training.json").read_text())
    assert training["samples"] == {"train": 48, "val": 6}
    reasons = " ".join(entry["reason"] for entry in training["skipped"])
    assert "column" in reasons and "no letter or digit" in reasons and len(training["skipped"]) == 3


def test_misaligned_parallel_files_give_one_clear_error(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("one\ntwo\nthree\n")
    (tmp_path / "b.txt").write_text("eins\nzwei\n")
    code = main(["seq2seq", "train", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
                 "--set", "data.source=files", "--set", f"data.path={tmp_path / 'a.txt'}",
                 "--set", f"data.target_path={tmp_path / 'b.txt'}"])
    err = capsys.readouterr().err
    assert code == 2 and "same number of lines" in err and "a.txt" in err and "b.txt" in err
    assert main(["seq2seq", "train", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
                 "--set", "data.source=files", "--set", f"data.path={tmp_path / 'a.txt'}"]) == 2
    assert "data.target_path" in capsys.readouterr().err


def test_multi30k_training_side_drops_the_wordless_lines(data_root):
    from tasks.seq2seq import data as data_lib
    from tasks.seq2seq.config import multi30k_rnn

    splits = data_lib.load_splits(multi30k_rnn(), data_root)
    assert len(splits["test"]) == 1000 and len(splits["val"]) == 1014
    assert len(splits["train"]) == 29000 - len(splits["skipped"]) and 1 <= len(splits["skipped"]) <= 4
    assert all("@@" in entry["reason"] for entry in splits["skipped"])


def test_resume_after_a_kill_is_exact(tmp_path, monkeypatch):
    """A Transformer with dropout, killed after epoch 1 and resumed, ends with the weights of
    an uninterrupted run (optimizer, dropout RNG and the bucketed stream's position)."""
    import keras

    import shared.training
    import tasks.seq2seq.training  # noqa: F401 - registers the custom classes

    args = (*TINY, "--set", "train.epochs=3", "--set", "model.architecture=transformer",
            "--set", "model.model_dim=16", "--set", "model.num_heads=2", "--set", "model.ff_dim=32",
            "--set", "model.encoder_layers=1", "--set", "model.decoder_layers=1",
            "--set", "model.dropout_rate=0.2", "--set", "model.share_embeddings=false")
    train_killed_then_resumed("seq2seq", tmp_path, args, monkeypatch)
    straight = keras.models.load_model(tmp_path / "straight/model.keras")
    resumed = keras.models.load_model(tmp_path / "killed/model.keras")
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    # the training time of a resumed run counts the epochs before the kill too
    history = shared.training.read_history(tmp_path / "killed/logs/history.csv")
    assert len(history["epoch_seconds"]) == 3 and min(history["epoch_seconds"]) > 0
    timings = json.loads((tmp_path / "killed/timings.json").read_text())
    assert timings["train, all epochs (across resumes)"] == pytest.approx(sum(history["epoch_seconds"]), abs=1e-3)


def test_errors_name_the_command_and_the_skipped_lines(tmp_path, capsys):
    assert main(["seq2seq", "evaluate", "--workdir", str(tmp_path / "never-trained")]) == 2
    assert "kts seq2seq train --workdir" in capsys.readouterr().err
    tsv = tmp_path / "few.tsv"
    tsv.write_bytes(b"\xff\xfe broken\tkaputt\none\teins\n")
    assert main(["seq2seq", "train", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
                 "--set", "data.source=tsv", "--set", f"data.path={tsv}"]) == 2
    err = capsys.readouterr().err
    assert str(tsv) in err and "1 line(s) skipped" in err and "not UTF-8" in err


def _stdin(monkeypatch, data: bytes):
    import io
    import types

    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


def test_translate_stdin_gives_one_output_line_per_input_line(tiny_run, tmp_path, monkeypatch, capsys):
    _stdin(monkeypatch, b"3 May 1979\n\n   \ntuesday march 4 1999\n\n")
    assert run_cli("seq2seq", "translate", tiny_run, "-", "--out", str(tmp_path)) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 5  # five input lines, five output lines
    assert [bool(line) for line in lines[:-1]] == [True, False, False, True, False]
    saved = json.loads((tmp_path / "translations.json").read_text())
    assert [item["blank"] for item in saved] == [False, True, True, False, True]
    assert [item["translation"] for item in saved] == lines[:-1]
    _stdin(monkeypatch, b"\n \n")
    assert main(["seq2seq", "translate", "-", "--workdir", str(tiny_run)]) == 2
    assert "no text from standard input (2 blank line(s))" in capsys.readouterr().err


def test_is_iso_date_accepts_real_days_only():
    from pipelines.datasets.dates import is_iso_date

    assert is_iso_date("2020-02-29") and is_iso_date("1900-01-01")
    for text in ("2020-02-31", "2021-02-29", "1970-7-09", "0000-01-01", "hello world", "",
                 " 2020-01-01", "2020-01-01x", "20200101", "\uff12020-01-01"):
        assert not is_iso_date(text), text


def test_dates_translate_flags_invalid_dates_and_reports_confidence(tiny_run, tmp_path, capsys):
    """The tiny model writes many impossible dates: each one is flagged on stderr and in
    translations.json; stdout keeps one line per input; --set eval.flag_below_log_prob flags
    low-confidence outputs (every output is below 0)."""
    from pipelines.datasets.dates import is_iso_date

    inputs = ["hello world", "31 February 2020", "3 May 1979", "tuesday march 4 1999"]
    assert run_cli("seq2seq", "translate", tiny_run, *inputs, "--out", str(tmp_path),
                   "--set", "eval.flag_below_log_prob=0") == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 4
    saved = json.loads((tmp_path / "translations.json").read_text())
    for item in saved:
        assert item["valid_output"] == is_iso_date(item["translation"])
        assert ("not a valid date" in item["flags"]) == (not item["valid_output"])
        assert item["mean_log_prob"] < 0 and any(f.startswith("low confidence") for f in item["flags"])
    assert captured.err.count("low confidence") == 4
    assert captured.err.count("not a valid date") == sum(not item["valid_output"] for item in saved)


def test_dates_evaluation_counts_invalid_outputs_and_confidence(tiny_run):
    from pipelines.datasets.dates import is_iso_date

    results = json.loads((tiny_run / "evaluation/results.json").read_text())
    hypotheses = (tiny_run / "evaluation/hypotheses.txt").read_text().splitlines()
    assert results["invalid_label"] == "not a valid date"
    assert results["invalid_outputs"] == pytest.approx(np.mean([not is_iso_date(h) for h in hypotheses]))
    assert all("invalid_outputs" in row for row in results["settings"])
    confidence = results["mean_log_prob"]
    assert confidence["min"] <= confidence["p01"] <= confidence["mean"] < 0 and confidence["missing"] == 0


def test_report_data_table_is_filled_and_dates_have_no_languages(tiny_run):
    report = json.loads((tiny_run / "report/report.json").read_text())
    data = next(table for table in report["tables"] if table["title"] == "Data")
    assert [row[0] for row in data["rows"]] == ["train", "val", "test"]
    assert all(cell != "" for row in data["rows"] for cell in row)
    assert data["rows"][0][3] == 0  # characters of the training side are all known
    assert "de" not in report["title"] and "ISO 8601" in report["title"]
    assert (report["config"]["data"]["source_lang"], report["config"]["data"]["target_lang"]) == ("", "")
    from tasks.seq2seq.config import DataConfig, multi30k_rnn

    assert DataConfig(source="multi30k").languages() == ("de", "en")
    assert multi30k_rnn().data.languages() == ("de", "en")


def test_evaluate_scores_given_files_in_full_beside_the_run_results(tiny_run, tmp_path, capsys):
    from pipelines.datasets.dates import generate_dates

    pairs = generate_dates(30, seed=7)
    sources = [s for s, _ in pairs[:10]] + [""] + [s for s, _ in pairs[10:]]  # line 11 is blank
    references = [r for _, r in pairs[:10]] + ["1999-01-01"] + [r for _, r in pairs[10:]]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(references) + "\n", encoding="utf-8")
    own = (tiny_run / "evaluation/results.json").read_bytes()
    assert run_cli("seq2seq", "evaluate", tiny_run, "--set", f"eval.source_file={tmp_path / 'src.txt'}",
                   "--set", f"eval.reference_file={tmp_path / 'ref.txt'}") == 0
    assert "the run's own" in capsys.readouterr().out
    assert (tiny_run / "evaluation/results.json").read_bytes() == own  # not overwritten
    out = tiny_run / "evaluation/files/src.txt"
    results = json.loads((out / "results.json").read_text())
    assert results["sentences"] == 30 and results["lines"] == 31  # every pair, not a 5% split
    assert [entry["line"] for entry in results["skipped"]] == [11]
    assert results["source_file"] == str(tmp_path / "src.txt") and "invalid_outputs" in results
    hypotheses = (out / "hypotheses.txt").read_text().split("\n")[:-1]
    assert len(hypotheses) == 31 and hypotheses[10] == ""  # line-aligned with src.txt
    assert 0.0 <= results["bleu"] <= 100.0 and len(results["settings"]) == 3
    saved = json.loads((tiny_run / "config.json").read_text())
    assert saved["eval"]["source_file"] == ""  # evaluate does not change the run's config
    assert run_cli("seq2seq", "report", tiny_run) == 0
    report = json.loads((tiny_run / "report/report.json").read_text())
    scored = next(table for table in report["tables"] if table["title"] == "Scored files")
    assert scored["rows"][0][:5] == ["src.txt", str(tmp_path / "src.txt"), str(tmp_path / "ref.txt"), 30, 1]
    # one of the two files alone is a config error naming the other
    assert main(["seq2seq", "evaluate", "--workdir", str(tiny_run),
                 "--set", f"eval.source_file={tmp_path / 'src.txt'}"]) == 2
    assert "eval.reference_file" in capsys.readouterr().err


def test_a_split_off_corpus_says_what_its_evaluation_scores():
    from pipelines.datasets.parallel import ParallelSource
    from tasks.seq2seq.config import smoke
    from tasks.seq2seq.evaluation import scope_note

    def part(count):
        return ParallelSource(["a"] * count, ["b"] * count)

    splits = {"train": part(900), "val": part(50), "test": part(50)}
    config = smoke()
    assert scope_note(config, splits, 50) == ""  # dates: the test split is the whole test set
    config.data.source, config.data.path = "files", "corpus.de"
    note = scope_note(config, splits, 50)
    assert "50 of 1000 usable pairs of corpus.de" in note and "eval.source_file=SRC" in note
    config.eval.limit = 20
    assert "eval.limit=20: 20 of the 50 test sentences scored" in scope_note(config, splits, 20)
