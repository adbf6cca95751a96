"""Tests for shared.plots and shared.report: PNGs, report.json, self-contained HTML, index."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from shared import plots
from shared import report as report_lib
from shared.report import PNG_SIGNATURE, Report, load_report, record_task_status, update_index


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    return Image.open(io.BytesIO(data)).size


@pytest.fixture(scope="module")
def curves_png() -> bytes:
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.7, 0.5], "accuracy": [0.5, 0.7, 0.8],
               "val_accuracy": [0.4, 0.6, 0.75], "learning_rate": [1e-3, 5e-4, 2.5e-4]}
    return plots.training_curves(history)


def _report(curves_png: bytes, name: str = "<b>x</b>") -> Report:
    report = Report("classification", "Digits & <friends>")
    report.add_metrics({"test_accuracy": 0.9876, "params": 93322, "model": "cnn"})
    report.add_table("Per-class", ["class", "f1"], [[name, 0.5], ["seven", np.float32(0.25)]], note="macro F1")
    report.add_figure("curves", curves_png, caption="loss & accuracy")
    report.add_text("Summary", "line one\n<script>alert(1)</script>")
    report.add_skipped([{"path": "bad/1.png", "reason": "truncated"}, {"path": "bad/2.png", "reason": "empty"}])
    report.set_run_info({"train": {"epochs": 3, "lr": 1e-3}, "seed": 0}, {"python": "3.11"}, {"fit": 12.5})
    return report


def test_json_round_trip(tmp_path, curves_png):
    index = _report(curves_png).write(tmp_path / "r")
    assert index == tmp_path / "r" / "index.html"
    data = load_report(tmp_path / "r")
    assert data["task"] == "classification" and data["title"] == "Digits & <friends>"
    assert data["metrics"] == {"test_accuracy": 0.9876, "params": 93322, "model": "cnn"}
    assert data["tables"][0]["rows"][1] == ["seven", 0.25]
    assert data["figures"] == [{"name": "curves", "file": "curves.png", "caption": "loss & accuracy"}]
    assert data["skipped_count"] == 2 and data["skipped"][0]["path"] == "bad/1.png"
    assert data["config"]["train"]["epochs"] == 3 and data["environment"] == {"python": "3.11"}
    assert data["timings"] == {"fit": 12.5} and data["created"]


def test_html_self_contained_and_escaped(tmp_path, curves_png):
    page = _report(curves_png).write(tmp_path / "r").read_text()
    assert "0.9876" in page and "93,322" in page and "cnn" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "<script" not in page and "Digits &amp; &lt;friends&gt;" in page
    assert "2 skipped" in page and "bad/2.png" in page and "<details>" in page
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 1 and base64.b64decode(embedded[0]) == curves_png
    assert "http://" not in page and "https://" not in page


def test_figure_files_are_valid_png(tmp_path, curves_png):
    _report(curves_png).write(tmp_path / "r")
    assert (tmp_path / "r" / "curves.png").read_bytes() == curves_png
    width, height = _png_size(curves_png)
    assert width > 300 and height > 200


def test_rewrite_removes_stale_figures(tmp_path, curves_png):
    _report(curves_png).write(tmp_path / "r")
    Report("t", "no figures").write(tmp_path / "r")
    assert not (tmp_path / "r" / "curves.png").exists()
    assert load_report(tmp_path / "r")["figures"] == []


def test_failed_write_keeps_previous_report(tmp_path, curves_png, monkeypatch):
    _report(curves_png).write(tmp_path / "r")
    before = (tmp_path / "r" / "report.json").read_text()

    def broken_html(self, created):
        raise RuntimeError("render failed")

    monkeypatch.setattr(Report, "to_html", broken_html)
    with pytest.raises(RuntimeError):
        Report("t", "second").write(tmp_path / "r")
    assert (tmp_path / "r" / "report.json").read_text() == before
    monkeypatch.undo()

    def failing_text(path, text):  # figures are written, then index.html fails
        raise OSError("disk full")

    monkeypatch.setattr(report_lib, "atomic_write_text", failing_text)
    third = Report("t", "third")
    third.add_figure("other", curves_png)
    with pytest.raises(OSError, match="disk full"):
        third.write(tmp_path / "r")
    assert (tmp_path / "r" / "report.json").read_text() == before
    leftovers = [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_add_figure_validates(curves_png):
    report = Report("t", "t")
    with pytest.raises(ValueError, match="name"):
        report.add_figure("../evil", curves_png)
    with pytest.raises(ValueError, match="PNG"):
        report.add_figure("ok", b"not a png")
    report.add_figure("ok", curves_png)
    with pytest.raises(ValueError, match="already"):
        report.add_figure("ok", curves_png)
    with pytest.raises(ValueError, match="Received"):
        report.add_table("t", ["a", "b"], [[1]])


def test_index_keeps_other_tasks(tmp_path, curves_png):
    reports = tmp_path / "reports"
    _report(curves_png).write(reports / "classification")
    Report("detection", "Boxes").write(reports / "detection")
    update_index(reports, "detection", reports / "detection", {"mAP": 0.41})
    update_index(reports, "classification", reports / "classification", {"accuracy": 0.9})
    page = update_index(reports, "detection", reports / "detection", {"mAP": 0.55}).read_text()
    entries = json.loads((reports / "index.json").read_text())
    assert list(entries) == ["classification", "detection"]
    assert entries["classification"]["headline"] == {"accuracy": 0.9}
    assert entries["detection"]["headline"] == {"mAP": 0.55}
    assert entries["detection"]["report"] == "detection" and entries["detection"]["title"] == "Boxes"
    assert 'href="classification/index.html"' in page and "0.5500" in page and "0.4100" not in page
    assert page.index("classification") < page.index("detection")


def test_index_links_are_relative_even_outside_reports_dir(tmp_path):
    page = update_index(tmp_path / "reports", "<task>", tmp_path / "elsewhere", {}).read_text()
    entry = json.loads((tmp_path / "reports" / "index.json").read_text())["<task>"]
    assert entry["report"] == "../elsewhere" and entry["status"] == "ok"
    assert 'href="../elsewhere/index.html"' in page and "file://" not in page and "&lt;task&gt;" in page


def test_index_lists_failed_and_skipped_tasks_with_the_reason(tmp_path, curves_png):
    reports = tmp_path / "reports"
    _report(curves_png).write(reports / "classification")
    update_index(reports, "classification", reports / "classification", {"accuracy": 0.9})
    record_task_status(reports, "detection", "skipped", "missing data: bccd (kts data fetch bccd)")
    page = record_task_status(reports, "classification", "failed", "ValueError: <boom>").read_text()
    entries = json.loads((reports / "index.json").read_text())
    assert entries["detection"] == {**entries["detection"], "status": "skipped",
                                    "reason": "missing data: bccd (kts data fetch bccd)"}
    assert entries["classification"]["status"] == "failed" and entries["classification"]["report"] == "classification"
    assert "ValueError: &lt;boom&gt;" in page and "kts data fetch bccd" in page and "1 failed, 1 skipped" in page
    assert 'href="classification/index.html">last report</a>' in page
    page = update_index(reports, "classification", reports / "classification", {"accuracy": 0.95}).read_text()
    assert "reason" not in json.loads((reports / "index.json").read_text())["classification"]
    assert "&lt;boom&gt;" not in page and "1 ok, 1 skipped" in page
    with pytest.raises(ValueError, match="status"):
        record_task_status(reports, "x", "broken")


def test_old_absolute_index_entries_are_linked_relatively(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.json").write_text(json.dumps({"old": {"report": str(tmp_path / "runs" / "r"), "headline": {}}}))
    page = record_task_status(reports, "new", "skipped", "no data").read_text()
    assert 'href="../runs/r/index.html"' in page and "file://" not in page


def test_training_curves_without_validation():
    png = plots.training_curves({"loss": [3.0, 2.0, 1.5], "accuracy": [0.1, 0.3, 0.5]})
    assert _png_size(png)[0] > 300
    with pytest.raises(ValueError, match="Received"):
        plots.training_curves({})


def test_a_metric_measured_every_few_epochs_is_plotted_through_its_gaps():
    nan = float("nan")
    epochs, values = plots.measured_epochs([0.5, nan, nan, nan, 0.8, nan, 0.9])
    assert epochs.tolist() == [1, 5, 7] and values.tolist() == [0.5, 0.8, 0.9]
    png = plots.training_curves({"loss": [3.0, 2.5, 2.0, 1.8, 1.5, 1.4, 1.3], "val_auc": [0.5, nan, nan, nan, 0.8,
                                                                                            nan, 0.9]})
    assert _png_size(png)[0] > 300


def test_metric_families_pair_train_and_validation():
    families = plots._metric_families({"accuracy": [], "loss": [], "val_loss": [], "val_accuracy": [], "lr": [],
                                       "epoch_seconds": []})  # a timing, not a curve
    assert families == {"loss": ["loss", "val_loss"], "accuracy": ["accuracy", "val_accuracy"], "lr": ["lr"]}


def test_series_without_numbers_are_not_plotted():
    nan = float("nan")
    history = {"loss": [3.0, 2.0], "val_loss": [nan, nan], "box_loss": [1.0, 0.5], "val_box_loss": [nan, 0.4],
               "val_map": [nan, nan]}
    assert plots._plotted_families(history) == {"loss": ["loss"], "box_loss": ["box_loss", "val_box_loss"]}
    _png_size(plots.training_curves(history))


def test_image_grid_grey_and_rgb():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    rgb = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    _png_size(plots.image_grid(grey, [f"true {i} / pred 8 (0.91)" for i in range(5)], ncols=4))
    _png_size(plots.image_grid(rgb, ["a", "b", "c"], caption_colors=["red", "green", "red"]))
    with pytest.raises(ValueError, match="caption"):
        plots.image_grid(rgb, ["a"])


@pytest.mark.parametrize("num_classes", [3, 12, 40])
def test_confusion_matrix_sizes(num_classes):
    rng = np.random.default_rng(num_classes)
    cm = rng.integers(0, 50, (num_classes, num_classes)) + np.eye(num_classes, dtype=int) * 200
    cm[0] = 0  # a class never seen must not divide by zero
    _png_size(plots.confusion_matrix(cm, [f"class_{i}" for i in range(num_classes)]))
    _png_size(plots.confusion_matrix(cm, [str(i) for i in range(num_classes)], normalize=False))


def test_bar_chart_and_pr_curves():
    _png_size(plots.bar_chart({"cat": 0.9, "dog": 0.75, "<b>": 0.1}, "per-class F1", "F1"))
    recall = np.linspace(0, 1, 20)
    _png_size(plots.pr_curves({"car": (recall, 1 - 0.5 * recall), "person": (recall, 1 - recall**2)}))


def test_number_formatting():
    from shared.report_html import fmt, fmt_seconds, fmt_time

    assert [fmt(v) for v in (0.98123, 93322, 1e-6, 123456789.0, "cnn", 200.316, 9.87654)] == [
        "0.9812", "93,322", "1.000e-06", "123,456,789", "cnn", "200.32", "9.8765"]
    assert fmt_seconds(75.2) == "1m 15.2s" and fmt_seconds(4000) == "1h 6m 40s"
    assert fmt_time("2026-01-02T03:04:05+00:00") == "2026-01-02 03:04:05 +00:00"


def test_report_before_evaluation_names_the_command(tmp_path):
    from shared.task import RunDir

    with pytest.raises(FileNotFoundError, match=r"kts detection evaluate --workdir"):
        RunDir(tmp_path, "detection").evaluation_results()
