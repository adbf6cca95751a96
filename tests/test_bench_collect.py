"""benchmarks/collect.py: the --json results of the benchmarks -> one table in docs/benchmarks.md."""

import json

from benchmarks import collect

REPORT = {"date": "2026-12-03", "hardware": {"cpu": "AMD EPYC", "cpu_cores": 2, "gpu": None},
          "environment": {"backend": "jax", "devices": ["cpu"], "versions": {"keras": "3.15.1", "jax": "0.10.2"}},
          "ours": {"images_per_s": 812.5, "first_epoch_s": 9.0}, "peer": {"images_per_s": 650.0},
          "ratio_ours_over_peer": 1.25}


def test_a_row_has_ours_the_peer_the_ratio_and_where_it_ran():
    row = collect.summarize("classification", REPORT)
    assert row["ours"] == {"ours.images_per_s": 812.5} and row["peer"] == {"peer.images_per_s": 650.0}
    assert row["ratios"] == {"ratio_ours_over_peer": 1.25}
    assert (row["backend"], row["device"], row["date"]) == ("jax", "AMD EPYC (2 cores)", "2026-12-03")
    assert row["versions"] == "keras 3.15.1, jax 0.10.2"


def test_the_document_keeps_its_text_and_gets_one_table(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## Classification\n\nHand-written analysis.\n")
    result = tmp_path / "classification.json"
    result.write_text(json.dumps(REPORT))
    for _ in range(2):  # regenerating replaces the table, it does not add a second one
        assert collect.main([str(result), str(tmp_path / "missing.json"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert text.count(collect.BEGIN) == 1 and text.count(collect.END) == 1
    assert text.index("Intro.") < text.index(collect.BEGIN) < text.index("## Classification")
    assert "Hand-written analysis." in text and "| classification | ours.images_per_s 812 |" in text
    assert collect.main([str(tmp_path / "missing.json"), "--doc", str(doc)]) == 1
