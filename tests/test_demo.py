"""`kts demo`, the main job, on the smoke presets: every task runs and the index lists it.

Not `backend`-marked: it runs in the TensorFlow pass only. The demo is orchestration (run each
task, then the index); every task's own smoke run is tested under JAX in its task tests, so a
second pass here would repeat ~3.5 min of training without testing anything new (issue 20.12).
"""

import json

from shared.cli import main
from tasks import TASKS


def test_demo_runs_every_task_and_writes_the_index(tmp_path, data_root):
    reports = tmp_path / "reports"
    code = main(["demo", "--preset", "smoke", "--workdir", str(tmp_path / "runs"),
                 "--reports-dir", str(reports), "--data-root", str(data_root)])
    assert code == 0
    index = json.loads((reports / "index.json").read_text())
    assert set(index) == set(TASKS)
    html = (reports / "index.html").read_text()
    for task in TASKS:
        assert task in html
        assert (tmp_path / "runs" / task / "report" / "index.html").exists()
