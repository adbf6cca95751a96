"""Export stage: vectors.txt and vectors.bin in word2vec's formats (gensim's
KeyedVectors.load_word2vec_format reads both), TensorBoard projector files
(projector/vectors.tsv, projector/metadata.tsv) and a SavedModel lookup: `lookup` takes token
strings [batch] and returns `vectors` float32 [batch, dim] (an unknown token gets the
padding row, all zeros) and `known` bool. A subword run (model.subword=true) also writes
ngrams.npy and subword.json (`subword.save_export`), and its lookup answers an unknown token
with the mean of its character n-gram rows, hashed in the graph as fastText does (`from_ngrams`
bool says which tokens were). TensorFlow code (allowed here)."""

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
    subword = hasattr(vectors, "oov_vector")
    if subword:
        from tasks.embeddings.subword import save_export

        info.update(save_export(vectors, root))
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

            if subword:
                self.ngrams = tf.Variable(vectors.ngrams, trainable=False, name="ngrams")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tokens")])
        def lookup(self, tokens):
            ids = self.table.lookup(tokens)
            known = ids < len(vectors)
            found = tf.gather(self.embeddings, ids)
            if not subword:
                return {"vectors": found, "known": known}
            mean, has = ngram_mean(tokens, self.ngrams, vectors.minn, vectors.maxn)
            from_ngrams = ~known & has
            return {"vectors": tf.where(from_ngrams[:, None], mean, found), "known": known,
                    "from_ngrams": from_ngrams}

    module = Lookup()
    with atomic_dir(run.dir.saved_model) as tmp:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.lookup, "lookup": module.lookup})
    loaded = tf.saved_model.load(str(run.dir.saved_model))
    probe = vectors.words[:5] + ["<never-seen-token>"]
    served = loaded.signatures["lookup"](tokens=tf.constant(probe))
    expected = table_vectors[[vectors.index.get(w, len(vectors)) for w in probe]]
    if subword:  # the graph's n-gram hashing must be numpy's (`subword.ngram_ids`)
        expected[-1] = vectors.oov_vector(probe[-1])
    difference = float(np.max(np.abs(served["vectors"].numpy() - expected)))
    if difference > 1e-5 or bool(served["known"].numpy()[-1]):
        raise ValueError(f"The exported lookup at {run.dir.saved_model} disagrees with the vectors "
                         f"(difference {difference:.3g}). This is a bug.")
    info.update({"saved_model": "saved_model", "signature": "lookup", "input": "tokens string [batch]",
                 "outputs": {"vectors": "float32 [batch, dim], zeros for an unknown token",
                             "known": "bool [batch]"}, "check_max_difference": difference})
    if subword:
        info["outputs"].update({"vectors": "float32 [batch, dim]: an unknown token's is the mean of its n-gram "
                                           "rows (zeros when it has none)",
                                "from_ngrams": "bool [batch]: unknown, answered from n-grams"})
    atomic_write_json(root / "export.json", info)
    print(f"embeddings export: {root} (vectors.txt, vectors.bin, saved_model lookup)")
    return root


def ngram_mean(tokens, ngrams, minn: int, maxn: int):
    """(mean of each token's n-gram rows [batch, dim], has n-grams [batch]) in TensorFlow:
    `subword.ngram_ids`' n-grams and fastText's FNV-1a hash (over UTF-8 bytes, sign-extended),
    vectorised over tokens and start positions; the loops are over lengths and bytes."""
    import tensorflow as tf

    buckets = tf.cast(tf.shape(ngrams)[0], tf.int64)
    chars = tf.strings.unicode_decode(tf.strings.join(["<", tokens, ">"]), "UTF-8", errors="replace")
    lengths = tf.cast(chars.row_lengths(), tf.int64)[:, None]
    cp = tf.pad(tf.cast(chars.to_tensor(0), tf.int64), [[0, 0], [0, maxn]])  # [B, L + maxn]
    width = tf.shape(cp)[1] - maxn
    def shift(x, bits):
        return tf.bitwise.right_shift(x, tf.cast(bits, tf.int64))

    def bit_or(a, b):
        return tf.bitwise.bitwise_or(tf.cast(a, tf.int64), tf.cast(b, tf.int64))

    count = tf.where(cp < 0x80, 1, tf.where(cp < 0x800, 2, tf.where(cp < 0x10000, 3, 4)))
    lead = tf.where(count == 1, cp, tf.where(count == 2, bit_or(0xC0, shift(cp, 6)), tf.where(
        count == 3, bit_or(0xE0, shift(cp, 12)), bit_or(0xF0, shift(cp, 18)))))
    data = [lead] + [tf.where(k < count, bit_or(0x80, tf.bitwise.bitwise_and(
        shift(cp, tf.maximum(6 * (count - 1 - k), 0)), tf.constant(0x3F, tf.int64))), tf.constant(0, tf.int64))
        for k in range(1, 4)]
    data = [tf.where(b >= 0x80, b + 0xFFFFFF00, b) for b in data]  # sign-extended: b | 0xFFFFFF00
    start = tf.range(tf.cast(width, tf.int64))[None, :]
    total = tf.zeros([tf.shape(cp)[0], tf.shape(ngrams)[1]], ngrams.dtype)
    found = tf.zeros([tf.shape(cp)[0]], ngrams.dtype)
    h = tf.fill(tf.shape(cp[:, :width]), tf.constant(2166136261, tf.int64))
    for n in range(1, maxn + 1):  # h: the hash of characters start .. start + n - 1
        for k in range(4):
            byte, has = data[k][:, n - 1:n - 1 + width], count[:, n - 1:n - 1 + width] > k
            mixed = tf.bitwise.bitwise_xor(h, byte) * tf.constant(16777619, tf.int64)
            h = tf.where(has, tf.bitwise.bitwise_and(mixed, tf.constant(0xFFFFFFFF, tf.int64)), h)
        if n < minn:
            continue
        valid = start + n <= lengths
        if n == 1:  # fastText skips the lone '<' and '>'
            valid &= (start != 0) & (start + 1 != lengths)
        rows = tf.gather(ngrams, tf.where(valid, h % buckets, 0))
        weight = tf.cast(valid, ngrams.dtype)
        total += tf.reduce_sum(rows * weight[..., None], axis=1)
        found += tf.reduce_sum(weight, axis=1)
    return total / tf.maximum(found, 1.0)[:, None], found > 0
