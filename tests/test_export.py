"""Export without TensorFlow is skipped with a clear message; `python -m` equals `kts`."""

import subprocess
import sys

import pytest

import shared.export


def test_saved_model_export_is_skipped_cleanly_without_tensorflow(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(shared.export, "tensorflow_available", lambda: False)
    assert shared.export.export_saved_model(object(), tmp_path / "saved_model") is None
    assert "TensorFlow is not installed" in capsys.readouterr().out
    assert not (tmp_path / "saved_model").exists()
    with pytest.raises(ImportError, match="pip install tensorflow-cpu"):
        shared.export.load_saved_model(tmp_path / "saved_model")


def test_python_dash_m_is_the_same_cli():
    module = subprocess.run([sys.executable, "-m", "tasks.classification", "--list-presets"],
                            capture_output=True, text=True, check=True).stdout
    console = subprocess.run([sys.executable, "-m", "shared.cli", "classification",
                              "--list-presets"], capture_output=True, text=True,
                             check=True).stdout
    assert module == console and "smoke:" in module and "Command:" in module
