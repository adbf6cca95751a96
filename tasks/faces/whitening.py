"""Whitening of the embedding, fitted on the training people (`model.whitening` > 0).

The network's features are dominated by the directions that told its training people apart;
on few training people (Olivetti's 30) what separates unseen people lies more in the weaker
directions. A shrunk PCA whitening fitted on the training images' embeddings, x -> (C + s I)^-1/2
(x - mean) with s = shrinkage x the mean eigenvalue, then unit-normalised, evens them out:
+0.3 to +7.6 points of 10-fold accuracy and +0.009 to +0.024 AUC on four Olivetti seeds
(docs/results.md, faces). The same whitening makes uniform LBP histograms (`model.lbp_radii`)
as good as the network on those pairs: whitened, they carry most of the presets' accuracy.

An embedding is made of blocks (the network's embedding; the LBP histograms), each whitened by
its own fit and unit-normalised; the blocks are concatenated with equal weight and normalised
again. The fit is kept in `Whitening` layers appended to the saved model, so evaluation, the
CLI and the SavedModel all use it. Its matrix is stored as the eigenvectors of the nonzero
eigenvalues (at most one fewer than the training images) and one scale for the rest.

After whitening the training people's own pairs no longer look like unseen people's (their
same-person distances come out far larger), so a threshold chosen on them would be wrong. When
the validation pairs are of the training people, their distances are cross-fitted instead: the
people are split in groups, and each group's pairs are scored under a whitening fitted
without that group.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from pipelines.datasets.identities import Pairs
from tasks.faces.verification import distances_of

PACKAGE = "kts_faces"
MAX_FIT_IMAGES = 20000  # a seeded subset beyond this: the covariance needs no more


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def averaged(views: list[np.ndarray]) -> np.ndarray:
    """The normalised mean of unit embeddings of the same images (`models.embed`'s flip averaging)."""
    return _unit(sum(np.asarray(view, np.float32) for view in views))


def in_chunks(compute, images: np.ndarray, size: int = 512) -> np.ndarray:
    """float32 `compute(images)` a chunk of `size` images at a time (LBP of 20,000 images at once
    would hold gigabytes of codes)."""
    return np.concatenate([np.asarray(compute(images[start:start + size]), np.float32)
                           for start in range(0, len(images), size)])


def pairs_among(pairs: Pairs, images: np.ndarray) -> Pairs:
    """The `pairs` whose two images are both in `images`, re-indexed to positions in it."""
    position = np.full(int(max(pairs.first.max(initial=0), pairs.second.max(initial=0), images.max(initial=0))) + 1,
                       -1)
    position[images] = np.arange(len(images))
    first, second = position[pairs.first], position[pairs.second]
    keep = (first >= 0) & (second >= 0)
    return Pairs(first[keep], second[keep], pairs.same[keep], pairs.fold[keep])


def fit(vectors: np.ndarray, shrinkage: float) -> dict:
    """The whitening of the embeddings `vectors` [N, D]: {mean [D], basis [D, k] (eigenvectors
    of the k nonzero eigenvalues), scales [k], rest (the scale of every other direction)}."""
    vectors = np.asarray(vectors, np.float64)
    if len(vectors) < 2:
        raise ValueError(f"Whitening needs the embeddings of at least 2 training images. Received: {len(vectors)}")
    mean = vectors.mean(0)
    centred = vectors - mean
    if len(centred) >= centred.shape[1]:
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(centred))
    else:  # fewer images than dimensions: the thin SVD of the data, O(N^2 D) instead of O(D^3)
        _, singular, right = np.linalg.svd(centred, full_matrices=False)
        eigenvalues, eigenvectors = singular**2 / len(centred), right.T
    eigenvalues = np.maximum(eigenvalues, 0.0)
    floor = shrinkage * max(float(eigenvalues.sum()) / centred.shape[1], 1e-12)  # the mean of all D
    kept = eigenvalues > 1e-9 * max(float(eigenvalues.max()), 1e-30)
    return {"mean": mean.astype(np.float32), "basis": eigenvectors[:, kept].astype(np.float32),
            "scales": (1.0 / np.sqrt(eigenvalues[kept] + floor)).astype(np.float32),
            "rest": np.float32(1.0 / np.sqrt(floor))}


def apply(vectors: np.ndarray, whitening: dict) -> np.ndarray:
    """The whitened unit embeddings, as a `Whitening` layer then a unit normalisation give them."""
    centred = np.asarray(vectors, np.float32) - whitening["mean"]
    basis, rest = whitening["basis"], whitening["rest"]
    return _unit(rest * centred + ((centred @ basis) * (whitening["scales"] - rest)) @ basis.T)


def combined(blocks: list[list[np.ndarray]], fits: list[dict]) -> np.ndarray:
    """The embedding of the whitened model: `blocks[b][v]` is block b's features of view v (the
    image, its mirror); per view the whitened blocks side by side, then the views averaged."""
    views = []
    for v in range(len(blocks[0])):
        parts = [apply(block[v], fitted) for block, fitted in zip(blocks, fits)]
        views.append(_unit(np.concatenate(parts, axis=1)))
    return averaged(views)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Whitening(layers.Layer):
    """(x - mean) scaled by `scales` along the `basis` directions and by `rest` across the others
    (`fit`); fixed weights, set after training."""

    def __init__(self, rank: int, **kwargs):
        super().__init__(trainable=False, dtype="float32", **{k: v for k, v in kwargs.items()
                                                              if k not in ("trainable", "dtype")})
        self.rank = int(rank)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, name="mean")
        self.basis = self.add_weight(shape=(dim, self.rank), initializer="zeros", trainable=False, name="basis")
        self.scales = self.add_weight(shape=(self.rank,), initializer="ones", trainable=False, name="scales")
        self.rest = self.add_weight(shape=(), initializer="ones", trainable=False, name="rest")

    def call(self, vectors):
        centred = ops.cast(vectors, "float32") - self.mean
        along = ops.matmul(centred, self.basis) * (self.scales - self.rest)
        return self.rest * centred + ops.matmul(along, ops.transpose(self.basis))

    def get_config(self):
        return {**super().get_config(), "rank": self.rank}


def whitened_output(features, fitted: dict, name: str):
    """`features` (a symbolic tensor) whitened by `fitted` and unit-normalised."""
    layer = Whitening(len(fitted["scales"]), name=f"{name}_whitening")
    whitened = layer(features)
    layer.set_weights([fitted["mean"], fitted["basis"], fitted["scales"], fitted["rest"]])
    return layers.UnitNormalization(axis=-1, dtype="float32", name=f"{name}_whitened")(whitened)


def whitened_model(image, blocks: list, fits: list[dict], names: list[str]) -> keras.Model:
    """The model from `image` (a Keras input) to the blocks (symbolic features), each whitened by
    its fit, side by side and unit-normalised: what `combined` computes in numpy."""
    outputs = [whitened_output(block, fitted, name) for block, fitted, name in zip(blocks, fits, names)]
    if len(outputs) > 1:
        joined = layers.Concatenate(axis=-1, name="blocks")(outputs)
        outputs = [layers.UnitNormalization(axis=-1, dtype="float32", name="whitened_embedding")(joined)]
    return keras.Model(image, outputs[0], name="face_embedding_whitened")


def cross_fitted_distances(blocks: list[list[np.ndarray]], labels: np.ndarray, train: np.ndarray, pairs: Pairs,
                           shrinkage: float, seed: int, groups: int = 5) -> tuple[np.ndarray, np.ndarray, int]:
    """(distances, same, groups) of those `pairs` within one group of training people, each group
    scored under whitenings fitted on the other groups (`groups` of them, fewer with < 10
    people). `blocks[b][v]`: block b's un-whitened features of view v, of every image (indexed
    like `labels`); `train`: the training images."""
    people = np.unique(labels[train])
    groups = min(groups, len(people) // 2)
    if groups < 2:
        raise ValueError(f"Cross-fitting the whitening needs at least 4 training people. Received: {len(people)}")
    fitted_on = [averaged([view[train] for view in block]) for block in blocks]
    distances, same = [], []
    for group in np.array_split(np.random.default_rng([seed, 47]).permutation(people), groups):
        held = np.isin(labels[train], group)
        fits = [fit(features[~held], shrinkage) for features in fitted_on]
        held_images = train[held]
        vectors = np.zeros((len(labels), sum(block[0].shape[1] for block in blocks)), np.float32)
        vectors[held_images] = combined([[view[held_images] for view in block] for block in blocks], fits)
        keep = np.isin(pairs.first, held_images) & np.isin(pairs.second, held_images)
        distances.append(distances_of(vectors, pairs.first[keep], pairs.second[keep]))
        same.append(pairs.same[keep])
    return np.concatenate(distances), np.concatenate(same), groups
