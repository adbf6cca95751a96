"""Sequence-to-sequence translation with attention: RNN (Bahdanau / Luong) and Transformer
encoder-decoders, greedy and beam search apart from the model, sacreBLEU / chrF evaluation,
a SavedModel whose translate signature runs beam search in the graph.

    kts seq2seq run --preset dates            # dates -> ISO, minutes on CPU
    kts seq2seq translate "3 May 1979" --workdir runs/seq2seq/dates
    kts seq2seq run --preset multi30k-transformer --backend jax
"""

from __future__ import annotations

from shared.task import Task
from tasks.seq2seq.config import PRESETS, Seq2SeqConfig


class Seq2SeqTask(Task):
    name = "seq2seq"
    config_class = Seq2SeqConfig
    presets = PRESETS
    aliases = {"translate": "predict"}
    inputs_help = "predict/translate: source sentences"
    # tune: greedy sacreBLEU on the validation pairs after each epoch (eval.epoch_bleu_sentences);
    # the best trial's test score is the report's `bleu`, decoded with beam eval.beam_size
    tune_metric, tune_direction, tune_test_key = "val_bleu", "maximize", "bleu"
    tune_metric_switches = {"eval.epoch_bleu_sentences": 0}
    stages = {
        "train": "tasks.seq2seq.training:train",
        "evaluate": "tasks.seq2seq.evaluation:evaluate",
        "export": "tasks.seq2seq.export:export",
        "report": "tasks.seq2seq.reporting:report",
        "predict": "tasks.seq2seq.predict:predict",
    }


TASK = Seq2SeqTask()
