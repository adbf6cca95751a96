"""Small pure per-element and per-batch ops (dict -> dict) for the pipeline builder.

Elements are dicts `{"image": uint8 HxWxC, "label": int32, "weight": float32}`; batches have
the same keys with a leading batch axis. An element op may carry `op.batched`, the same
transform on a whole batch, which the builder's vectorised path for in-memory sources uses.
Ops never touch global random state: random batch ops take a `numpy.random.Generator` that
the builder derives from (seed, step), so a pipeline restarted at step S yields exactly
what it yielded the first time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


class resize:  # noqa: N801 - used like a function: ops.resize((h, w))
    """Resizes an element's image to (height, width) with bilinear filtering, if needed."""

    def __init__(self, size: tuple[int, int]):
        self.size = tuple(size)

    def __call__(self, element: dict) -> dict:
        height, width = self.size
        image = element["image"]
        if image.shape[:2] == (height, width):
            return element
        channels = image.shape[2]
        pil = Image.fromarray(image[..., 0] if channels == 1 else image)
        out = np.asarray(pil.resize((width, height), Image.BILINEAR), dtype=np.uint8)
        return {**element, "image": out.reshape(height, width, channels)}

    def batched(self, batch: dict) -> dict:
        return {**batch, "image": resize_array(batch["image"], self.size)}


def resize_array(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resizes a whole uint8 NHWC array once (in-memory sources)."""
    if images.shape[1:3] == tuple(size):
        return images
    op = resize(size)
    return np.stack([op({"image": image})["image"] for image in images])


class one_hot:  # noqa: N801 - used like a function: ops.one_hot(num_classes)
    def __init__(self, num_classes: int):
        self.identity = np.eye(num_classes, dtype=np.float32)

    def __call__(self, element: dict) -> dict:
        return {**element, "label": self.identity[int(element["label"])].copy()}

    def batched(self, batch: dict) -> dict:
        return {**batch, "label": self.identity[np.asarray(batch["label"], int)]}


def to_fit_tuple(element: dict):
    """(x, y, sample_weight), the form `model.fit` takes."""
    return element["image"], element["label"], element["weight"]


class mixup_or_cutmix:  # noqa: N801 - used like a function
    """Batch op: mixes each image with a partner from the same batch (one-hot labels).

    MixUp blends whole images with weight lam ~ Beta(a, a); CutMix pastes a box of area
    1 - lam. With both alphas > 0 each batch uses one of them (CutMix with
    `switch_probability`). Labels are mixed with the exact pixel proportions.
    """

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, switch_probability: float = 0.5):
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.switch_probability = switch_probability

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict:
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0
                                                or rng.random() < self.switch_probability)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        if alpha <= 0:
            return batch
        images, labels = batch["image"], batch["label"]
        partner = rng.permutation(images.shape[0])
        lam = float(rng.beta(alpha, alpha))
        if use_cutmix:
            height, width = images.shape[1:3]
            cut_h, cut_w = int(height * np.sqrt(1 - lam)), int(width * np.sqrt(1 - lam))
            cy, cx = rng.integers(height), rng.integers(width)
            y0, y1 = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
            x0, x1 = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
            mixed = images.copy()
            mixed[:, y0:y1, x0:x1] = images[partner, y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
        else:
            mixed = (lam * images.astype(np.float32)
                     + (1 - lam) * images[partner].astype(np.float32))
            mixed = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        return {**batch, "image": mixed, "label": lam * labels + (1 - lam) * labels[partner]}
