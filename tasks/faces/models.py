"""The embedding network and the metric-learning losses, in keras.layers / keras.ops only.

`build_embedding_model`: float32 RGB images in 0..255 -> unit embeddings: rescale to [0, 1],
a ResNet from `shared.nets.resnet`, global average pooling (or a grid of average-pooled cells,
`grid`), Dense -> BatchNorm -> L2 norm. `grid_embedding_model`: the grid features themselves,
unit-normalised, as the embedding (`model.embedding=grid`).

Losses take (labels int [B], embeddings float [B, D]) and return one value per anchor, so
`compile(loss=...)` and `fit()` train them without a custom step:

- `TripletLoss(mining="hard")`: batch-hard (Hermans et al. 2017): per anchor, the farthest
  positive against the nearest negative.
- `TripletLoss(mining="semihard")`: FaceNet (Schroff et al. 2015): per anchor-positive pair,
  the nearest negative farther than the positive, else the farthest negative.
- `ContrastiveLoss`: every pair of the batch; same: d^2, different: max(0, margin - d)^2.
- `ArcFaceLoss` over `ArcFaceHead` cosines (Deng et al. 2019): the target logit is
  s * cos(theta + m). The head is used in training only; the embedding model is what is saved.

Distances between unit vectors: squared Euclidean d^2 = 2 - 2 cos, in [0, 4].
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from shared.nets import resnet

PACKAGE = "kts_faces"


def _backbone(name: str, input_shape, width_multiplier: float) -> keras.Model:
    depths = {"resnet20": 20, "resnet32": 32, "resnet56": 56}
    blocks = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
    if name in depths:
        return resnet.cifar_resnet(depths[name], input_shape, width_multiplier)
    if name in blocks:
        return resnet.basic_resnet(blocks[name], input_shape, width_multiplier)
    raise ValueError(f"Unknown backbone {name!r}. Expected one of: {sorted(depths) + sorted(blocks)}")


def build_embedding_model(backbone: str, image_size: int, embedding_dim: int = 128,
                          width_multiplier: float = 1.0, dropout_rate: float = 0.0, grid: int = 0,
                          cnn_size: int = 0) -> keras.Model:
    """`grid` 0: the backbone's last map is averaged to one vector (global average pooling).
    `grid` N > 0: averaged to an N x N grid of cells instead, batch-normalised and flattened
    (layer `grid_features`, N * N * channels values: where on the aligned face a feature
    fires is kept). Either way -> dropout -> Dense(embedding_dim) -> BatchNorm -> L2 norm.
    `cnn_size` > 0 and < `image_size` (a divisor of it): the image is shrunk to it in the model
    before the backbone, by averaging blocks of (image_size / cnn_size)^2 pixels. (A Keras
    `Resizing` layer with antialiasing exported to a SavedModel that disagreed with it by 0.2.)"""
    image = keras.Input((image_size, image_size, 3), dtype="float32", name="image")
    features = layers.Rescaling(1 / 255.0, dtype="float32", name="preprocessing")(image)
    if cnn_size and cnn_size != image_size:
        if image_size % cnn_size:
            raise ValueError(f"model.cnn_size={cnn_size} must divide data.image_size={image_size}.")
        features = layers.AveragePooling2D(image_size // cnn_size, name="cnn_shrink")(features)
        image_size = cnn_size
    features = _backbone(backbone, (image_size, image_size, 3), width_multiplier)(features)
    if grid > 0:
        side = int(features.shape[1])
        if side % grid:
            raise ValueError(f"model.grid={grid} does not divide {backbone}'s {side}x{side} feature map at "
                             f"a {image_size} px input (data.image_size, or model.cnn_size); use a divisor of {side}.")
        if side > grid:
            features = layers.AveragePooling2D(side // grid, name="grid_pooling")(features)
        features = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="grid_bn")(features)
        features = layers.Flatten(name="grid_features")(features)
    else:
        features = layers.GlobalAveragePooling2D(name="pooling")(features)
    if dropout_rate > 0:
        features = layers.Dropout(dropout_rate, name="dropout")(features)
    features = layers.Dense(embedding_dim, use_bias=False, name="projection")(features)
    features = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="projection_bn")(features)
    embedding = layers.UnitNormalization(axis=-1, dtype="float32", name="embedding")(features)
    return keras.Model(image, embedding, name="face_embedding")


def grid_embedding_model(model: keras.Model) -> keras.Model:
    """The unit-normalised `grid_features` of a `grid` > 0 embedding model (sharing its layers):
    the embedding `model.embedding=grid` saves, scores and exports. The projection above them
    is what the loss trains; on few training people the grid features carry more of what tells
    unseen people apart (docs/results.md, faces)."""
    try:
        features = model.get_layer("grid_features").output
    except ValueError:
        raise ValueError("model.embedding=grid needs model.grid > 0 (the model has no grid features).") from None
    embedding = layers.UnitNormalization(axis=-1, dtype="float32", name="grid_embedding")(features)
    return keras.Model(model.input, embedding, name="face_grid_embedding")


def squared_distances(embeddings):
    """[B, B] squared Euclidean distances of unit vectors (>= 0)."""
    embeddings = ops.cast(embeddings, "float32")
    return ops.maximum(2.0 - 2.0 * ops.matmul(embeddings, ops.transpose(embeddings)), 0.0)


def _masks(labels):
    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    same = ops.equal(labels[:, None], labels[None, :])
    eye = ops.eye(ops.shape(labels)[0], dtype="bool")
    return ops.logical_and(same, ops.logical_not(eye)), ops.logical_not(same)


@keras.saving.register_keras_serializable(package=PACKAGE)
class TripletLoss(keras.losses.Loss):
    def __init__(self, margin: float = 0.2, mining: str = "semihard", name: str = "triplet", **kwargs):
        if mining not in ("hard", "semihard"):
            raise ValueError(f"mining must be 'hard' or 'semihard'. Received: {mining!r}")
        super().__init__(name=name, **kwargs)
        self.margin, self.mining = float(margin), mining

    def call(self, y_true, y_pred):
        distances = squared_distances(y_pred)
        positive, negative = _masks(y_true)
        big = ops.max(distances) + 1.0
        if self.mining == "hard":
            hardest_positive = ops.max(ops.where(positive, distances, 0.0), axis=1)
            hardest_negative = ops.min(ops.where(negative, distances, big + 4.0), axis=1)
            has_both = ops.logical_and(ops.any(positive, axis=1), ops.any(negative, axis=1))
            loss = ops.relu(hardest_positive - hardest_negative + self.margin)
            return ops.where(has_both, loss, 0.0)
        # semi-hard: [anchor, positive, negative]
        d_ap = distances[:, :, None]
        d_an = distances[:, None, :]
        farther = ops.logical_and(negative[:, None, :], ops.greater(d_an, d_ap))
        nearest_farther = ops.min(ops.where(farther, d_an, big + 4.0), axis=2)
        farthest_negative = ops.max(ops.where(negative, distances, -1.0), axis=1)[:, None]
        chosen = ops.where(ops.any(farther, axis=2), nearest_farther, farthest_negative)
        has_negative = ops.any(negative, axis=1)[:, None]
        valid = ops.logical_and(positive, has_negative)
        per_pair = ops.where(valid, ops.relu(distances - chosen + self.margin), 0.0)
        count = ops.sum(ops.cast(valid, "float32"), axis=1)
        return ops.sum(per_pair, axis=1) / ops.maximum(count, 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "mining": self.mining}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ContrastiveLoss(keras.losses.Loss):
    def __init__(self, margin: float = 1.0, name: str = "contrastive", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = float(margin)

    def call(self, y_true, y_pred):
        squared = squared_distances(y_pred)
        distances = ops.sqrt(ops.maximum(squared, 1e-12))
        positive, negative = _masks(y_true)
        per_pair = (ops.where(positive, squared, 0.0)
                    + ops.where(negative, ops.square(ops.relu(self.margin - distances)), 0.0))
        count = ops.sum(ops.cast(ops.logical_or(positive, negative), "float32"), axis=1)
        return ops.sum(per_pair, axis=1) / ops.maximum(count, 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ArcFaceHead(layers.Layer):
    """Cosines [B, classes] between unit embeddings and unit class centres (training only)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def build(self, input_shape):
        self.centres = self.add_weight(shape=(int(input_shape[-1]), self.num_classes),
                                       initializer="glorot_uniform", name="centres")

    def call(self, embeddings):
        centres = ops.cast(self.centres, embeddings.dtype)
        centres = centres / ops.maximum(ops.norm(centres, axis=0, keepdims=True), 1e-12)
        return ops.cast(ops.matmul(embeddings, centres), "float32")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ArcFaceLoss(keras.losses.Loss):
    def __init__(self, scale: float = 30.0, margin: float = 0.3, name: str = "arcface", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale, self.margin = float(scale), float(margin)

    def call(self, y_true, y_pred):
        cosines = ops.clip(ops.cast(y_pred, "float32"), -1.0 + 1e-6, 1.0 - 1e-6)
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        target = ops.one_hot(labels, ops.shape(cosines)[-1])
        sines = ops.sqrt(1.0 - ops.square(cosines))
        with_margin = cosines * math.cos(self.margin) - sines * math.sin(self.margin)
        # past pi - m, cos(theta + m) would rise again: use a linear penalty there instead
        with_margin = ops.where(cosines > math.cos(math.pi - self.margin), with_margin,
                                cosines - math.sin(math.pi - self.margin) * self.margin)
        logits = self.scale * ops.where(target > 0, with_margin, cosines)
        return keras.losses.categorical_crossentropy(target, logits, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "margin": self.margin}


def make_loss(config) -> keras.losses.Loss:
    """The loss named by `config.model.loss` (a ModelConfig)."""
    model = config.model
    if model.loss == "arcface":
        return ArcFaceLoss(model.arcface_scale, model.arcface_margin)
    if model.loss == "contrastive":
        return ContrastiveLoss(model.contrastive_margin)
    return TripletLoss(model.margin, "hard" if model.loss == "triplet_hard" else "semihard")


def training_model(embedding_model: keras.Model, loss: str, num_classes: int) -> keras.Model:
    """The model `fit()` trains: the embedding model itself, or with the ArcFace head on top."""
    if loss != "arcface":
        return embedding_model
    image = keras.Input(embedding_model.input.shape[1:], dtype="float32", name="image")
    cosines = ArcFaceHead(num_classes, name="arcface_head")(embedding_model(image))
    return keras.Model(image, cosines, name="face_arcface")


def embed(model: keras.Model, images, batch_size: int = 128, flip_average: bool = False,
          compiled: bool = False):
    """Unit embeddings (numpy float32 [N, D]) of float/uint8 images [N, S, S, 3] in 0..255.
    `compiled`: through `predict_on_batch` (traced once per batch shape, then ~3x faster than
    eager calls on CPU: for embedding the same images again and again, e.g. every epoch)."""
    import numpy as np

    def forward(batch):
        return model.predict_on_batch(batch) if compiled else model(batch, training=False)

    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        vectors = ops.convert_to_numpy(forward(batch)).astype(np.float32)
        if flip_average:
            vectors = vectors + ops.convert_to_numpy(forward(np.ascontiguousarray(batch[:, :, ::-1])))
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        outputs.append(vectors)
    if not outputs:
        return np.zeros((0, int(model.output.shape[-1])), np.float32)
    return np.concatenate(outputs)


def load_embedding_model(path) -> keras.Model:
    from tasks.faces import lbp, whitening  # noqa: F401  (registers the layers a whitened model holds)

    return keras.models.load_model(path, compile=False)
