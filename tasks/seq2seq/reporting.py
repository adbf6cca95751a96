"""Report stage: BLEU / chrF / exact-match cards, greedy-vs-beam table, samples, attention."""

from __future__ import annotations

import json
from pathlib import Path

from shared import config as config_lib
from shared import plots as shared_plots
from shared.report import Report, update_index
from shared.runtime import environment
from shared.task import Run
from shared.training import read_history
from tasks.seq2seq import plots, scoring_files


def _title(config) -> str:
    data, model = config.data, config.model
    source_lang, target_lang = data.languages()
    sides = f" {source_lang}->{target_lang}" if source_lang and target_lang else ""
    corpus = {"multi30k": f"Multi30k{sides}", "dates": "dates (English text) -> ISO 8601"}.get(
        data.source, f"{data.source} {data.path}{sides}")
    if model.architecture == "rnn":
        net = f"bi-{model.cell.upper()} + {model.attention} attention"
    else:
        net = f"Transformer {model.encoder_layers}+{model.decoder_layers} layers, d={model.model_dim}"
    return f"Translation: {corpus} / {net}"


def _invalid(row: dict) -> str:
    return f"{row['invalid_outputs']:.2%}" if "invalid_outputs" in row else ""


def _add_scored_files(rep: Report, run: Run, label: str) -> None:
    """The user's own files scored in full (evaluation/files/*), one row each."""
    scored = scoring_files.scored_files(run.dir)
    if not scored:
        return
    headers = ["name", "source file", "reference file", "pairs scored", "lines skipped", "decoding", "BLEU",
               "chrF", "exact match"] + ([label] if label else [])
    rows = [[item["name"], item["source_file"], item["reference_file"], item["sentences"],
             len({entry["line"] for entry in item["skipped"]}), item["main_setting"], f"{item['bleu']:.2f}",
             f"{item['chrf']:.2f}", f"{item['exact_match']:.4f}"] + ([_invalid(item)] if label else [])
            for item in scored]
    rep.add_table("Scored files", headers, rows,
                  note="Whole files scored with `kts seq2seq evaluate --set eval.source_file=SRC --set "
                       "eval.reference_file=REF` (every pair; lines empty or not UTF-8 skipped); results "
                       "in evaluation/files/<name>/results.json, hypotheses line-aligned with the source "
                       "file in hypotheses.txt.")


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text())
    config = run.config
    rep = Report("seq2seq", _title(config))
    main = results["main_setting"]
    headline = {f"BLEU ({main})": results["bleu"], f"chrF ({main})": results["chrf"],
                "exact match": results["exact_match"], f"{results['split']} sentences": results["sentences"]}
    label = results.get("invalid_label", "")
    if label:
        headline[f"{label} ({main})"] = _invalid(results)
    rep.add_metrics(headline)
    if results.get("scope"):
        rep.add_text("What was scored", results["scope"])
    if training.get("stopped_reason"):
        rep.add_text("Training stopped early", training["stopped_reason"])
    averaged = training.get("phases", {}).get("train", {}).get("averaged_epochs")
    if averaged:
        rep.add_text("Checkpoint averaging", f"The evaluated weights are the mean of the weights after "
                                             f"epochs {averaged[0]}-{averaged[-1]} ({len(averaged)} checkpoints).")
    history = read_history(run.dir.history_csv)
    if history:
        rep.add_figure("training_curves", shared_plots.training_curves(history),
                       "Label-smoothed loss and token accuracy (teacher forcing), train and validation.")
    rep.add_table("Greedy vs beam search", ["decoding", "BLEU", "chrF", "exact match"]
                  + ([label] if label else []) + ["sentences / s"],
                  [[row["setting"], f"{row['bleu']:.2f}", f"{row['chrf']:.2f}", f"{row['exact_match']:.4f}"]
                   + ([_invalid(row)] if label else []) + [f"{row['sentences_per_second']:.1f}"]
                   for row in results["settings"]],
                  note=f"length penalty alpha = {results.get('length_penalty', config.eval.length_penalty)}; batch "
                       f"{config.eval.batch_size}, sources padded to {config.data.max_source_length} tokens; "
                       f"speed after one untimed compile batch; "
                       f"sacreBLEU signature: {results['bleu_signature']}")
    sweep = results.get("length_penalty_sweep")
    if sweep:
        rep.add_table("Length penalty picked on validation", ["alpha", "validation BLEU", "chrF", "seconds"],
                      [[f"{row['alpha']}" + (" (picked)" if row["alpha"] == results["length_penalty"] else ""),
                        f"{row['bleu']:.2f}", f"{row['chrf']:.2f}", f"{row['seconds']:.1f}"] for row in sweep],
                      note=f"{main} on the validation split for each alpha of eval.length_penalty_grid; the "
                           f"best BLEU is used for the {results['split']} scores above, the export and translate.")
    confidence = results.get("mean_log_prob") or {}
    if confidence.get("mean") is not None:
        threshold = config.eval.flag_below_log_prob
        rep.add_text("Model confidence",
                     f"Mean token log-probability of the {main} outputs: mean {confidence['mean']:.3f}, 1st "
                     f"percentile {confidence['p01']:.3f}, lowest {confidence['min']:.3f}. `kts seq2seq "
                     "translate` gives it beside each translation (translations.json with --out) and flags "
                     "outputs below eval.flag_below_log_prob ("
                     + ("off" if threshold is None else f"{threshold}") + ").")
    rep.add_figure("decoding", plots.settings_chart(results["settings"]),
                   "Corpus BLEU and chrF (sacreBLEU) for each decoding setting.")
    if results["attention"]:
        rep.add_figure("attention", plots.attention_maps(results["attention"]),
                       "Attention of the model's own output (rows) over the source tokens (columns)"
                       + (", last decoder layer, mean over heads." if config.model.architecture ==
                          "transformer" else "."))
    rep.add_table("Sample translations", ["source", "reference", "greedy", main],
                  [[s["source"], s["reference"], s["greedy"], s["beam"]] for s in results["samples"]])
    rep.add_text("sacreBLEU", f"{results['bleu_signature']}\n{results['chrf_signature']}\n"
                              + next(r["bleu_detail"] for r in results["settings"] if r["setting"] == main))
    truncated, unknown = training.get("truncated", {}), training.get("unknown_source_tokens", {})
    rep.add_table("Data", ["split", "pairs", "truncated", "unknown source tokens"],
                  [[name, count, truncated.get(name, 0), unknown.get(name, "not recorded")]
                   for name, count in training["samples"].items()]
                  + [[results["split"], results["sentences"], results["truncated_sources"],
                      results.get("unknown_source_tokens", "not recorded")]],
                  note="Truncated: cut to data.max_source_length / max_target_length tokens. Unknown: "
                       "source tokens the tokenizer (trained on the training side) does not know "
                       "(\"not recorded\": a run trained before this was counted).")
    _add_scored_files(rep, run, label)
    rep.add_skipped(training.get("skipped", []))
    rep.set_run_info(config_lib.to_dict(config), environment(), run.dir.timings())
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "seq2seq", run.dir.report, headline)
    print(f"seq2seq report: {index_html}")
    return index_html
