"""benchmarks/goals.py: a goal is judged only from a result that bears on it (device, shape, peer)."""

import json

from benchmarks import goals


def _write(folder, name, report):
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report))
    return path


def test_goals_are_judged_from_the_right_runs_only(tmp_path, capsys):
    gpu = {"hardware": {"gpu": "NVIDIA H200"}}
    paths = [
        _write(tmp_path, "classification", {**gpu, "settings": {"torch_compile": True}, "ratio_ours_over_peer": 1.62}),
        _write(tmp_path, "seq2seq", {**gpu, "settings": {"size": "small"}, "ours": {"train": {"tokens_per_s": 9e5}}}),
        _write(tmp_path, "style", {"environment": {"devices": ["cpu"]}, "size": 512, "iterations": 500,
                                   "gatys_ratio": 0.8, "gatys_ours": {"seconds_for_n": 1.0}}),
        _write(tmp_path, "embeddings", {"hardware": {"cpu": "EPYC", "gpu": None}, "preset": "nltk-sg",
                                        "gensim_workers": 2, "ratios": {"speed (ours / gensim)": 0.2,
                                                                        "analogy points (ours - gensim)": -0.7}}),
    ]
    assert goals.main([*map(str, paths), "--json", str(tmp_path / "out" / "goals.json")]) == 0
    rows = {(r["issue"], r["goal"]): r for r in json.loads((tmp_path / "out" / "goals.json").read_text())}

    def row(issue, start):
        return next(r for (i, g), r in rows.items() if i == issue and g.startswith(start))

    assert row(22, "ResNet-18")["met"] is True and row(22, "ResNet-18")["measured"] == 1.62
    assert row(22, "Transformer")["met"] is None and "size=reference" in row(22, "Transformer")["note"]
    assert row(22, "YOLOv8")["met"] is None and "no detection result" in row(22, "YOLOv8")["note"]
    assert row(19, "Gatys iterations")["met"] is False  # a CPU ratio below 1.0
    assert row(19, "Gatys 500")["met"] is None and "GPU goal" in row(19, "Gatys 500")["note"]
    assert row(18, "word2vec words/s over gensim (same")["met"] is False
    assert row(18, "word2vec words/s over gensim with 16")["met"] is None
    assert row(18, "analogy")["met"] is True and row(18, "WordSim353")["met"] is None
    out = capsys.readouterr().out
    assert "| 22 | ResNet-18" in out and "3 of 4 measured goals met" not in out
    assert "measured goals met" in out


def test_lookup_reads_keys_with_dots_and_spaces():
    report = {"ratios": {"speed (ours / gensim)": 2.0}, "a": {"b.c": {"d": 1}}}
    assert goals.lookup(report, "ratios.speed (ours / gensim)") == 2.0
    assert goals.lookup(report, "a.b.c.d") == 1 and goals.lookup(report, "a.x") is None
