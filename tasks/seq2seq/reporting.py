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
from tasks.seq2seq import plots


def _title(config) -> str:
    data, model = config.data, config.model
    corpus = (f"Multi30k {data.source_lang}->{data.target_lang}" if data.source == "multi30k"
              else {"dates": "dates -> ISO"}.get(data.source, f"{data.source} {data.path}"))
    if model.architecture == "rnn":
        net = f"bi-{model.cell.upper()} + {model.attention} attention"
    else:
        net = f"Transformer {model.encoder_layers}+{model.decoder_layers} layers, d={model.model_dim}"
    return f"Translation: {corpus} / {net}"


def report(run: Run) -> Path:
    results = run.dir.evaluation_results()
    training = json.loads(run.dir.training_json.read_text())
    config = run.config
    rep = Report("seq2seq", _title(config))
    main = results["main_setting"]
    headline = {f"BLEU ({main})": results["bleu"], f"chrF ({main})": results["chrf"],
                "exact match": results["exact_match"], f"{results['split']} sentences": results["sentences"]}
    rep.add_metrics(headline)
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
    rep.add_table("Greedy vs beam search", ["decoding", "BLEU", "chrF", "exact match", "sentences / s"],
                  [[row["setting"], f"{row['bleu']:.2f}", f"{row['chrf']:.2f}", f"{row['exact_match']:.4f}",
                    f"{row['sentences_per_second']:.1f}"] for row in results["settings"]],
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
    truncated = training.get("truncated", {})
    rep.add_table("Data", ["split", "pairs", "truncated", "unknown source tokens"],
                  [[name, count, truncated.get(name, 0), ""] for name, count in training["samples"].items()]
                  + [[results["split"], results["sentences"], results["truncated_sources"],
                      results.get("unknown_source_tokens", "")]],
                  note="Truncated: cut to data.max_source_length / max_target_length tokens. Unknown: "
                       "source tokens the tokenizer (trained on the training side) does not know.")
    rep.add_skipped(training.get("skipped", []))
    rep.set_run_info(config_lib.to_dict(config), environment(), run.dir.timings())
    index_html = rep.write(run.dir.report)
    update_index(run.reports_dir, "seq2seq", run.dir.report, headline)
    print(f"seq2seq report: {index_html}")
    return index_html
