"""word2vec's hierarchical softmax: a Huffman tree over the vocabulary.

Each word is a leaf; its probability given a hidden vector h is the product, along the path
from the root, of sigmoid(h . u_node) for a 0 branch and sigmoid(-h . u_node) for a 1 branch
(u_node: the node's output vector), so the probabilities of all words sum to 1 and a
frequent word has a short path. As in word2vec's CreateBinaryTree, the two least frequent
nodes are merged first, the smaller one taking branch 0.

`huffman_tree(counts)` -> `points` [V, L] (the inner nodes on each word's path, root first,
numbered 0..V-2, padded with `pad`), `codes` [V, L] (the branch taken at each, 0 or 1) and
`lengths` [V]. The training batches then carry, per example, the target's path as its
output rows, label 1 - code and weight 1 on the path (0 on the padding).
"""

from __future__ import annotations

import heapq

import numpy as np


def huffman_tree(counts, pad: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.asarray(counts, np.int64)
    vocab = len(counts)
    if vocab < 2:
        raise ValueError(f"Hierarchical softmax needs at least 2 words in the vocabulary. Received: {vocab}")
    pad = vocab if pad is None else pad
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = np.zeros(2 * vocab - 1, np.int64)
    branch = np.zeros(2 * vocab - 1, np.int8)
    node = vocab
    while len(heap) > 1:
        count_a, a = heapq.heappop(heap)  # the smaller: branch 0
        count_b, b = heapq.heappop(heap)
        parent[a], parent[b], branch[b] = node, node, 1
        heapq.heappush(heap, (count_a + count_b, node))
        node += 1
    root = node - 1
    paths, bits = [], []
    for word in range(vocab):
        path, code, current = [], [], word
        while current != root:
            code.append(int(branch[current]))
            current = int(parent[current])
            path.append(current - vocab)  # inner nodes numbered 0..V-2
        paths.append(path[::-1])
        bits.append(code[::-1])
    lengths = np.asarray([len(p) for p in paths], np.int32)
    points = np.full((vocab, lengths.max()), pad, np.int32)
    codes = np.zeros((vocab, lengths.max()), np.int8)
    for word, (path, code) in enumerate(zip(paths, bits)):
        points[word, :len(path)] = path
        codes[word, :len(code)] = code
    return points, codes, lengths
