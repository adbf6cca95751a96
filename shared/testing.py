"""The one test harness every task uses.

- `check_model`: build, one `fit()` step, `.keras` save/reload with equal outputs, and a
  SavedModel export/reload with equal outputs (skipped without TensorFlow).
- `run_cli`: runs `kts <task> <command>` in-process, as a user would, on a tiny config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def assert_close(actual, expected, atol: float = 1e-5, what: str = "outputs") -> None:
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    difference = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    assert difference <= atol, f"{what} differ by {difference:.3g} (tolerance {atol})"


def check_model(model, x, y, tmp_path: Path, *, atol: float = 1e-5, export: bool = True) -> dict:
    """Runs the model checks on a compiled model and a tiny batch (x, y)."""
    import keras

    from shared.export import export_saved_model, load_saved_model, save_keras
    from shared.runtime import tensorflow_available

    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), f"loss after one step is {loss}"
    changed = any(not np.allclose(b, np.array(a)) for b, a in zip(before, model.trainable_weights))
    assert changed, "one fit() step changed no trainable weight"

    expected = keras.ops.convert_to_numpy(model(x, training=False))
    path = save_keras(model, tmp_path / "model.keras")
    reloaded = keras.models.load_model(path)
    assert_close(keras.ops.convert_to_numpy(reloaded(x, training=False)), expected, atol,
                 ".keras reload")
    result = {"loss": float(loss), "keras_path": path, "saved_model": None}
    if export and tensorflow_available():
        export_dir = export_saved_model(model, tmp_path / "saved_model")
        loaded = load_saved_model(export_dir)  # keep a reference: it owns the variables
        served = loaded.serve(np.asarray(x, np.float32))
        assert_close(np.asarray(served), expected, max(atol, 1e-4), "SavedModel reload")
        result["saved_model"] = export_dir
    return result


def run_cli(task: str, command: str, workdir: Path, *args: str, data_root: Path | None = None,
            reports_dir: Path | None = None) -> int:
    """`kts <task> <command> --workdir W ...` in-process; returns the exit code."""
    from shared.cli import run_task_command

    argv = [command, *args, "--workdir", str(workdir), "--quiet"]
    if data_root is not None:
        argv += ["--data-root", str(data_root)]
    argv += ["--reports-dir", str(reports_dir or Path(workdir).parent / "reports")]
    return run_task_command(task, argv)


def train_killed_then_resumed(task: str, tmp_path: Path, args: tuple, monkeypatch,
                              data_root: Path | None = None) -> tuple[Path, Path]:
    """Trains `args` straight through in tmp_path/straight; then in tmp_path/killed, killed at
    the start of the second epoch (KeyboardInterrupt, as a SIGINT would) and continued with
    `--resume`. Returns the two run folders, for the caller to compare."""
    import keras
    import pytest

    import shared.training

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli(task, "train", straight, *args, data_root=data_root) == 0

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated kill")

    real_fit = shared.training.fit
    monkeypatch.setattr(shared.training, "fit",
                        lambda *a, **k: real_fit(*a, **{**k, "extra_callbacks": [Kill()]}))
    with pytest.raises(KeyboardInterrupt):
        run_cli(task, "train", killed, *args, data_root=data_root)
    monkeypatch.setattr(shared.training, "fit", real_fit)
    assert not (killed / "model.keras").exists()
    assert run_cli(task, "train", killed, "--resume", data_root=data_root) == 0
    return straight, killed
