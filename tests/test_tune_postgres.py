"""Slow tier: the multi-machine recipe on one machine. A PostgreSQL server from the OS packages is
started on a local port, two workers share a study through `--storage postgresql://...`, and the
server is stopped. Skipped where PostgreSQL's initdb or the psycopg2 driver is missing."""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path):
    pytest.importorskip("psycopg2")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    prefix = []
    folder = Path(tempfile.mkdtemp(prefix="kts-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "kts", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-w", "-l", str(folder / "server.log"), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="kts", dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute("CREATE DATABASE kts")
        connection.close()
        url = f"postgresql+psycopg2://kts@127.0.0.1:{port}/kts"  # SQLAlchemy 2.1: plain postgresql:// is psycopg 3
        study = tmp_path / "study"
        done = subprocess.run(
            [sys.executable, "-m", "shared.cli", "classification", "tune", "--preset", "smoke", "--set",
             "train.epochs=2", "--set", "train.max_steps_per_epoch=8", "--param",
             "train.learning_rate=loguniform(1e-3,3e-2)", "--sampler", "tpe", "--pruner", "none", "--trials", "3",
             "--workers", "2",
             "--storage", url, "--workdir", str(study), "--reports-dir", str(tmp_path / "reports"), "--quiet"],
            cwd=REPO, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        import optuna

        trials = optuna.load_study(study_name="smoke", storage=url).trials
        assert [t.number for t in trials] == [0, 1, 2]
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert json.loads((study / "tune.json").read_text())["storage"] == url
        assert not (study / "study.db").exists()
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
