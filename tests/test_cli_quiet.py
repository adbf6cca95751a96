"""The command line as a new user meets it: no TensorFlow/absl log lines unless --verbose, and
a task's --help that names --list-presets and --show-config."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import task_parser

REPO = Path(__file__).resolve().parents[1]
NATIVE_LOG_LINE = re.compile(r"^[IWE]\d{4} |absl::InitializeLog", re.MULTILINE)


@pytest.mark.backend
def test_a_command_that_loads_keras_prints_no_native_log_lines(tmp_path):
    """`predict` on a folder without a model: Keras (and TensorFlow under that backend) is
    imported, then the command fails with its own one-line error, and nothing else."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "GLOG_minloglevel")}
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "classification", "predict", "x.png",
         "--workdir", str(tmp_path / "no_run")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "No trained model" in done.stderr
    assert not NATIVE_LOG_LINE.search(done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()] == \
        [line for line in done.stderr.splitlines() if line.startswith("error: ")]


def test_quiet_native_logs_keeps_other_lines(capfd):
    from shared.runtime import quiet_native_logs

    with quiet_native_logs():
        os.write(2, b"I0000 00:00:1796252173.637472    4491 port.cc:153] oneDNN notice\n"
                    b"E0000 00:00:1796252173.637472    4491 placer.cc:1] already registered\n"
                    b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n"
                    b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


def test_task_help_lists_presets_and_show_config_and_verbose():
    parser = task_parser("classification")
    text = parser.format_help()
    for flag in ("--list-presets", "--show-config", "--verbose"):
        assert flag in text, flag
    assert parser.parse_args(["predict", "x.png", "--verbose"]).verbose
    assert not parser.parse_args(["predict", "x.png"]).verbose
