"""Reliability: nothing silently wrong after a kill, a NaN, a damaged file or a folder that
cannot be written (issue 23). One test (or more) per guarantee in README's "Reliability".

Bad-input handling (corrupt images, odd SavedModel inputs, one-class datasets) is tested in
tests/test_reliability_inputs.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from shared import checkpoints
from shared.cli import main
from shared.testing import run_cli

ARGS = ("--preset", "smoke", "--set", "train.epochs=3", "--set", "augment.translate=0.1",
        "--set", "data.limit=96")


def _weights(workdir: Path) -> list[np.ndarray]:
    import keras

    import tasks.classification.layers  # noqa: F401 - registers the custom layers

    return [np.array(w) for w in keras.models.load_model(workdir / "model.keras").weights]


def _assert_same_weights(workdir: Path, reference: Path) -> None:
    for a, b in zip(_weights(workdir), _weights(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _kill_at_epoch(monkeypatch, epoch: int) -> None:
    """The next `fit` is killed (KeyboardInterrupt) when epoch `epoch` (0-based) begins."""
    import keras

    import shared.training

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, number, logs=None):
            if number == epoch:
                raise KeyboardInterrupt("simulated kill")

    real_fit = shared.training.fit
    monkeypatch.setattr(shared.training, "fit",
                        lambda *a, **k: real_fit(*a, **{**k, "extra_callbacks": [Kill()]}))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _h5_finite(path: Path) -> bool:
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda _n, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    return all(np.isfinite(a).all() for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_root):
    """Three epochs, never interrupted: what every resume must reproduce exactly."""
    workdir = tmp_path_factory.mktemp("rel") / "straight"
    assert run_cli("classification", "train", workdir, *ARGS, data_root=data_root) == 0
    return workdir


@pytest.fixture(scope="module")
def killed_after_two(tmp_path_factory, data_root):
    """The same run killed when epoch 3 begins: checkpoints of epochs 1 and 2 on disk."""
    workdir = tmp_path_factory.mktemp("rel") / "killed"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _kill_at_epoch(monkeypatch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_cli("classification", "train", workdir, *ARGS, data_root=data_root)
    backup = workdir / "checkpoints/backup"
    assert checkpoints.folders(backup) == [backup / "epoch-0002", backup / "epoch-0001"]
    return workdir


def _copy(workdir: Path, tmp_path: Path) -> Path:
    target = tmp_path / workdir.name
    shutil.copytree(workdir, target)
    return target


# 1. Resume: a checkpoint is one unit; a kill at any moment resumes exactly ---------------

@pytest.mark.backend
def test_kill_between_the_weights_and_the_metadata_resumes_exactly(straight, tmp_path, data_root,
                                                                   monkeypatch):
    """Issue 23.1: killed after epoch 2's weights were written, before its metadata. The
    checkpoint folder of epoch 2 never appears, so resume starts after epoch 1 and ends with
    the uninterrupted run's weights."""
    real_write = checkpoints.write

    def write_then_die(backup_dir, epoch, save_weights, metadata):
        if epoch < 2:
            return real_write(backup_dir, epoch, save_weights, metadata)

        def save_and_die(path):
            save_weights(path)
            assert path.exists()
            raise KeyboardInterrupt("killed between the weights and the metadata")
        return real_write(backup_dir, epoch, save_and_die, metadata)

    monkeypatch.setattr(checkpoints, "write", write_then_die)
    workdir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_cli("classification", "train", workdir, *ARGS, data_root=data_root)
    monkeypatch.setattr(checkpoints, "write", real_write)
    backup = workdir / "checkpoints/backup"
    assert checkpoints.folders(backup) == [backup / "epoch-0001"]
    assert [p.name for p in backup.iterdir()] == ["epoch-0001"]  # no half-written folder
    assert run_cli("classification", "train", workdir, "--resume", data_root=data_root) == 0
    _assert_same_weights(workdir, straight)


@pytest.mark.backend
@pytest.mark.parametrize("damaged", [checkpoints.WEIGHTS, checkpoints.METADATA])
def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(
        damaged, straight, killed_after_two, tmp_path, data_root, capsys):
    """Issue 23.6: the newest checkpoint's weights (h5) or metadata (JSON) cut in half:
    resume names the file in a warning, resumes from the checkpoint before it (which is
    kept), and still ends exactly where the uninterrupted run did."""
    workdir = _copy(killed_after_two, tmp_path)
    broken = workdir / "checkpoints/backup/epoch-0002" / damaged
    _truncate(broken)
    assert run_cli("classification", "train", workdir, "--resume", data_root=data_root) == 0
    out = capsys.readouterr().out
    assert f"warning: {broken} is damaged" in out
    assert "resuming from the checkpoint before it" in out and "end of epoch 1" in out
    _assert_same_weights(workdir, straight)
    rows = (workdir / "logs/history.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # epoch 2's row from before the kill is not there twice


@pytest.mark.backend
def test_every_checkpoint_damaged_refuses_with_the_files_named(killed_after_two, tmp_path,
                                                                data_root, capsys):
    workdir = _copy(killed_after_two, tmp_path)
    for folder in checkpoints.folders(workdir / "checkpoints/backup"):
        _truncate(folder / checkpoints.WEIGHTS)
    code = main(["classification", "train", "--resume", "--workdir", str(workdir),
                 "--data-root", str(data_root), "--quiet"])
    err = _error_line(capsys.readouterr().err)
    assert code == 2
    assert "Cannot resume" in err and "without --resume" in err
    assert "epoch-0002/model.weights.h5 is damaged" in err
    assert "epoch-0001/model.weights.h5 is damaged" in err
    assert not (workdir / "model.keras").exists()


def test_only_the_newest_two_checkpoints_are_kept_and_each_is_whole(tmp_path):
    backup = tmp_path / "backup"
    for epoch in (1, 2, 3):
        checkpoints.write(backup, epoch, lambda p: p.write_bytes(b"weights"),
                          {"global_step": 10 * epoch, "steps_per_epoch": 10})
    assert checkpoints.folders(backup) == [backup / "epoch-0003", backup / "epoch-0002"]
    assert sorted(p.name for p in (backup / "epoch-0003").iterdir()) == sorted([
        checkpoints.METADATA, checkpoints.WEIGHTS])
    # the epoch is stored in the folder's name and its metadata, and checked on load
    (backup / "epoch-0003" / checkpoints.METADATA).write_text(json.dumps(
        {"epoch": 2, "global_step": 20, "steps_per_epoch": 10}))
    with pytest.raises(checkpoints.CheckpointError, match="says epoch 2 in the folder of epoch 3"):
        checkpoints.read_metadata(backup / "epoch-0003" / checkpoints.METADATA, 3)


def test_a_checkpoint_of_the_earlier_single_file_layout_still_resumes(tmp_path):
    import h5py

    backup = tmp_path / "backup"
    backup.mkdir()
    with h5py.File(backup / "latest.weights.h5", "w") as f:
        f["layers/dense/vars/0"] = np.ones((2, 2), np.float32)
    (backup / checkpoints.METADATA).write_text(json.dumps(
        {"epoch": 3, "batch": 0, "global_step": 30, "steps_per_epoch": 10}))
    found = checkpoints.latest(backup)
    assert found.epoch == 3 and found.weights == backup / "latest.weights.h5"
    checkpoints.write(backup, 4, lambda p: shutil.copy(found.weights, p),
                      {"global_step": 40, "steps_per_epoch": 10})
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-0004"]


# 2. NaN: rejected in the config; a diverged run saves no model and exits non-zero ---------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_config_values_are_rejected(value, tmp_path, capsys):
    code = main(["classification", "train", "--preset", "smoke", "--workdir", str(tmp_path / "w"),
                 "--set", f"train.learning_rate={value}"])
    err = _error_line(capsys.readouterr().err)
    assert code == 2 and err.startswith("error: train.learning_rate must be a finite number"), err
    assert not (tmp_path / "w").exists()


def test_non_finite_values_are_rejected_in_every_float_field_and_in_config_json(tmp_path):
    from shared import config as config_lib
    from tasks.seq2seq.config import Seq2SeqConfig, smoke

    with pytest.raises(config_lib.ConfigError, match="eval.length_penalty_grid must be a finite"):
        config_lib.apply_overrides(smoke(), ["eval.length_penalty_grid=0.6,nan"])
    data = config_lib.to_dict(smoke())
    data["train"]["momentum"] = float("inf")
    (tmp_path / "config.json").write_text(json.dumps(data))  # json writes Infinity
    with pytest.raises(config_lib.ConfigError, match="train.momentum must be a finite number"):
        config_lib.load(Seq2SeqConfig, tmp_path / "config.json")


@pytest.mark.backend
def test_a_run_whose_loss_becomes_nan_saves_no_model_and_fails(tmp_path, data_root, capsys):
    """Issue 23.2, a real divergence: epoch 1 trains normally, then the step schedule
    multiplies the learning rate by 1e8 and the loss becomes NaN in epoch 2. Nothing
    non-finite is kept (no model.keras, no checkpoint, no best or averaged weights), `train`
    exits 2 with one line, and resuming with a sane schedule finishes the run."""
    workdir = tmp_path / "run"
    # an older model in the same folder must not pass as this run's result either
    workdir.mkdir()
    (workdir / "model.keras").write_bytes(b"an older run's model")
    argv = ["classification", "train", *ARGS, "--set", "train.epochs=2",
            "--set", "train.average_last_epochs=2", "--set", "train.schedule=step",
            "--set", "train.step_decay_epochs=1", "--set", "train.step_decay_factor=1e8",
            "--workdir", str(workdir), "--data-root", str(data_root), "--quiet"]
    capsys.readouterr()
    assert main(argv) == 2
    err = _error_line(capsys.readouterr().err)
    assert "became nan" in err and "epoch 2" in err
    assert "no model was saved" in err and "end of epoch 1" in err and "--resume" in err
    assert not (workdir / "model.keras").exists()
    saved = sorted((workdir / "checkpoints").rglob("*.h5"))
    assert [p.parent.name for p in saved if p.name == checkpoints.WEIGHTS] == ["epoch-0001"]
    assert all(_h5_finite(p) for p in saved), saved
    assert main(["classification", "evaluate", "--workdir", str(workdir)]) == 2
    assert "No trained model" in capsys.readouterr().err
    # fix the cause and resume from the last good checkpoint
    assert run_cli("classification", "train", workdir, "--resume",
                   "--set", "train.step_decay_factor=0.1", data_root=data_root) == 0
    assert all(np.isfinite(w).all() for w in _weights(workdir))


@pytest.mark.backend
def test_evaluate_refuses_a_model_with_non_finite_weights(straight, tmp_path, capsys):
    import keras

    from shared.export import save_keras

    workdir = _copy(straight, tmp_path)
    model = keras.models.load_model(workdir / "model.keras")
    variable = model.trainable_weights[0]
    variable.assign(np.full(variable.shape, np.nan, np.float32))
    save_keras(model, workdir / "model.keras")
    for command in ("evaluate", "export"):
        assert main(["classification", command, "--workdir", str(workdir)]) == 2
        err = _error_line(capsys.readouterr().err)
        assert f"{workdir / 'model.keras'} holds non-finite weights" in err
        assert "Train again" in err
    assert not (workdir / "evaluation").exists()


# 6. Damaged model.keras: named, with what to do ------------------------------------------

@pytest.mark.backend
@pytest.mark.parametrize("command", ["evaluate", "export", "predict"])
def test_a_truncated_model_keras_is_named(command, straight, tmp_path, capsys):
    workdir = _copy(straight, tmp_path)
    _truncate(workdir / "model.keras")
    extra = []
    if command == "predict":
        from PIL import Image

        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
        extra = [str(tmp_path / "x.png")]
    assert main(["classification", command, *extra, "--workdir", str(workdir)]) == 2
    err = _error_line(capsys.readouterr().err)
    assert f"{workdir / 'model.keras'} is damaged" in err
    assert f"kts classification train --workdir {workdir}" in err


@pytest.mark.parametrize("task", ["classification", "detection", "seq2seq"])
def test_every_task_checks_model_keras_before_loading_it(task, tmp_path):
    from shared.export import ModelFileError
    from shared.task import RunDir

    run_dir = RunDir(tmp_path, task)
    run_dir.model_keras.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ModelFileError, match=f"kts {task} train --workdir"):
        run_dir.require_model()


# 5. A folder that cannot be written: one clear line, before any work ---------------------

def _error_line(err: str) -> str:
    """The one `error:` line of the CLI's stderr (no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_run_folder_under_a_file_is_refused_up_front(command, tmp_path, capsys, monkeypatch):
    from shared.task import Task

    monkeypatch.setattr(Task, "_stage", lambda *a: pytest.fail("work started"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    workdir = blocker / "run"
    assert main(["classification", command, "--preset", "smoke", "--workdir", str(workdir)]) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"Cannot write the run folder {workdir}" in line and "is a file" in line


@pytest.mark.backend
@pytest.mark.parametrize("command", ["evaluate", "export", "report", "predict"])
def test_a_read_only_trained_run_is_refused_before_any_work(command, straight, tmp_path, capsys,
                                                            monkeypatch):
    """A read-only mount (simulated: root ignores permission bits): every command that writes
    the run folder says so first, instead of a traceback after the work."""
    import shared.io
    from shared.task import Task

    real_mkstemp = tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == straight.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(shared.io.tempfile, "mkstemp", read_only)
    monkeypatch.setattr(Task, "_stage", lambda *a: pytest.fail("work started"))
    extra = [str(tmp_path / "x.png"), "--out", str(tmp_path / "out")] if command == "predict" else []
    code = main(["classification", command, *extra, "--workdir", str(straight)])
    err = _error_line(capsys.readouterr().err)
    assert code == 2 and f"Cannot write the run folder {straight}: Read-only file system" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes through permission bits")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    from shared.io import NotWritableError, check_writable

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(NotWritableError, match="Permission denied"):
            check_writable(locked / "run")
    finally:
        locked.chmod(0o755)


def test_the_output_and_reports_folders_are_checked_too(tmp_path, capsys, monkeypatch):
    from shared.task import Task

    monkeypatch.setattr(Task, "_stage", lambda *a: pytest.fail("work started"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["classification", "run", "--preset", "smoke", "--workdir", str(tmp_path / "w"),
                 "--reports-dir", str(blocker / "reports")])
    assert code == 2 and "Cannot write the reports folder" in capsys.readouterr().err


# 7. Export temporaries: beside the target, and a killed export's are removed -------------

_KILLED = """
import os, signal, sys
from pathlib import Path
from shared.io import atomic_dir, temporary_dir_beside
target = Path(sys.argv[1])
with temporary_dir_beside(target) as scratch:
    (scratch / "raw").mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "saved_model.pb").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_write(target: Path) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED), str(target)],
                          cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == -9


def test_a_killed_write_leaves_temporaries_that_the_next_write_removes(tmp_path):
    from shared.io import atomic_dir, remove_stale_temporaries

    target = tmp_path / "export" / "saved_model"
    _killed_write(target)
    left = sorted(p.name for p in target.parent.iterdir())
    assert len(left) == 2 and all(n.startswith(".saved_model.") and n.endswith(".tmp") for n in left)
    # a live process's temporaries (this one's) and other targets' are left alone
    mine = target.parent / f".saved_model.{os.getpid()}.abcdefgh.tmp"
    mine.mkdir()
    other = target.parent / ".other.1.abcdefgh.tmp"
    other.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "saved_model.pb").write_bytes(b"whole")
    names = sorted(p.name for p in target.parent.iterdir())
    assert names == sorted([mine.name, other.name, "saved_model"])
    # temporaries from before they carried a pid: removed once older than an hour
    legacy = target.parent / ".saved_model.zyxwvuts.tmp"
    legacy.mkdir()
    assert remove_stale_temporaries(target.parent, "saved_model") == []
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(target.parent, "saved_model") == [legacy]


def test_a_kill_between_the_two_renames_puts_the_old_folder_back(tmp_path):
    from shared.io import atomic_dir, remove_stale_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    moved = tmp_path / f".saved_model.{pid}.abcdefgh.old"  # target moved aside, then killed
    moved.mkdir()
    (moved / "saved_model.pb").write_bytes(b"previous export")
    remove_stale_temporaries(tmp_path)
    assert (tmp_path / "saved_model/saved_model.pb").read_bytes() == b"previous export"
    with atomic_dir(tmp_path / "saved_model") as tmp:
        (tmp / "saved_model.pb").write_bytes(b"new export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


@pytest.mark.backend
def test_export_keeps_its_scratch_beside_the_target_and_cleans_a_killed_one(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    import keras

    from shared.export import export_saved_model

    scratch_root = tmp_path / "system-tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))  # what /tmp would receive
    target = tmp_path / "export" / "saved_model"
    _killed_write(target)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    export_saved_model(model, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["saved_model"]
    assert not list(scratch_root.glob("kts-export-*"))  # (TF's autograph writes its own there)
