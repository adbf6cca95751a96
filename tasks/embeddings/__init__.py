"""Word embeddings: word2vec (skip-gram, CBOW, negative sampling) trained by `fit()` with
sparse row updates, on NLTK corpora or plain text; evaluated on analogies, WordSim353 and
SimLex-999; exported in word2vec's formats and as a SavedModel lookup.

    kts embeddings run --preset demo
    kts embeddings similar king money --workdir runs/embeddings/demo
    kts embeddings analogy man king woman --workdir runs/embeddings/demo
"""

from __future__ import annotations

from shared.task import CommandAliases, Task
from tasks.embeddings.config import PRESETS, EmbeddingsConfig


class EmbeddingsTask(Task):
    name = "embeddings"
    config_class = EmbeddingsConfig
    presets = PRESETS
    aliases = CommandAliases(similar="predict", analogy="predict")
    inputs_help = "similar: words; analogy: A B C (A is to B as C is to ?)"
    # Sparse row updates: data-parallel under JAX's sharding only (MirroredStrategy cannot
    # split their batches); on TensorFlow the run trains on one device and says so.
    data_parallel = ("jax",)
    # `kts embeddings tune`: analogy accuracy on the validation half of the questions (every
    # epoch, from the model's vectors); the test half, scored once for the best trial, is
    # `test_analogy` in evaluation/results.json (the full-set accuracy includes both halves)
    tune_metric, tune_direction, tune_test_key = "val_analogy", "maximize", "test_analogy"
    tune_metric_switches = {"eval.val_analogy_every": 0}
    stages = {
        "train": "tasks.embeddings.training:train",
        "evaluate": "tasks.embeddings.evaluation:evaluate",
        "export": "tasks.embeddings.export:export",
        "report": "tasks.embeddings.reporting:report",
        "similar": "tasks.embeddings.predict:similar",
        "analogy": "tasks.embeddings.predict:analogy",
    }

    def predict(self, run, inputs, out=None):
        command = "analogy" if self.aliases.requested == "analogy" else "similar"
        return self._stage(command)(run, inputs, out)


TASK = EmbeddingsTask()
