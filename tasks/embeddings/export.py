"""Export stage: vectors.txt and vectors.bin in word2vec's formats (gensim's
KeyedVectors.load_word2vec_format reads both), TensorBoard projector files
(projector/vectors.tsv, projector/metadata.tsv) and a SavedModel lookup: `lookup` takes token
strings [batch] and returns `vectors` float32 [batch, dim] (an unknown token gets the
padding row, all zeros) and `known` bool. TensorFlow code (allowed here)."""

from __future__ import annotations

import numpy as np

from shared.export import TF_MISSING
from shared.io import atomic_dir, atomic_write_json
from shared.runtime import tensorflow_available
from shared.task import Run
from tasks.embeddings.training import load_vectors


def export(run: Run):
    vectors = load_vectors(run)
    root = run.dir.saved_model.parent
    vectors.save_word2vec(root / "vectors.txt")
    vectors.save_word2vec(root / "vectors.bin", binary=True)
    vectors.save_projector(root / "projector")
    info = {"word2vec_text": "vectors.txt", "word2vec_binary": "vectors.bin", "words": len(vectors),
            "dim": int(vectors.vectors.shape[1]),
            "projector": "projector/vectors.tsv + projector/metadata.tsv (load both at projector.tensorflow.org)"}
    if not tensorflow_available():
        print(TF_MISSING)
        atomic_write_json(root / "export.json", info)
        return root
    import tensorflow as tf

    table_vectors = np.concatenate([vectors.vectors, np.zeros((1, vectors.vectors.shape[1]), np.float32)])

    class Lookup(tf.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = tf.Variable(table_vectors, trainable=False, name="embeddings")
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(vectors.words), tf.range(len(vectors), dtype=tf.int64)),
                default_value=len(vectors))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tokens")])
        def lookup(self, tokens):
            ids = self.table.lookup(tokens)
            return {"vectors": tf.gather(self.embeddings, ids), "known": ids < len(vectors)}

    module = Lookup()
    with atomic_dir(run.dir.saved_model) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.lookup, "lookup": module.lookup})
    loaded = tf.saved_model.load(str(run.dir.saved_model))
    probe = vectors.words[:5] + ["<never-seen-token>"]
    served = loaded.signatures["lookup"](tokens=tf.constant(probe))
    expected = table_vectors[[vectors.index.get(w, len(vectors)) for w in probe]]
    difference = float(np.max(np.abs(served["vectors"].numpy() - expected)))
    if difference > 1e-6 or bool(served["known"].numpy()[-1]):
        raise ValueError(f"The exported lookup at {run.dir.saved_model} disagrees with the vectors "
                         f"(difference {difference:.3g}). This is a bug.")
    info.update({"saved_model": "saved_model", "signature": "lookup", "input": "tokens string [batch]",
                 "outputs": {"vectors": "float32 [batch, dim], zeros for an unknown token",
                             "known": "bool [batch]"}, "check_max_difference": difference})
    atomic_write_json(root / "export.json", info)
    print(f"embeddings export: {root} (vectors.txt, vectors.bin, saved_model lookup)")
    return root
