"""P identities x K images per batch, for metric learning (triplet, contrastive, ArcFace).

Batch number S is a pure function of (seed, S): its generator is seeded by [seed, S], so the
stream resumes exactly at a global step (`pipelines.builder.step_dataset`). Identities with
fewer than two images give no positive pair and are left out (listed in `left_out`); an
identity with fewer than K images is sampled with repetition (the augmentation then
differs). Augmentation (numpy, per image): horizontal flip, a rotation of up to `rotation`
degrees about the centre (bilinear, edge pixels repeated), a shift of up to `shift` of the side
(edge pixels repeated), brightness and contrast jitter.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Augment:
    flip: bool = True
    shift: float = 0.0  # fraction of the side
    brightness: float = 0.0  # added, fraction of 255
    contrast: float = 0.0  # multiplied around the image mean, 1 +- contrast
    rotation: float = 0.0  # degrees, uniform in +- rotation

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 (B, H, W, C) in 0..255 -> the same, augmented."""
        out = images.astype(np.float32, copy=True)
        count, height, width = out.shape[:3]
        if self.flip:
            flips = rng.random(count) < 0.5
            out[flips] = out[flips, :, ::-1]
        if self.rotation > 0:
            angles = np.deg2rad(rng.uniform(-self.rotation, self.rotation, count))
            for i in range(count):
                out[i] = rotate(out[i], angles[i])
        if self.shift > 0:
            limit_y, limit_x = int(round(self.shift * height)), int(round(self.shift * width))
            for i in range(count):
                dy, dx = rng.integers(-limit_y, limit_y + 1), rng.integers(-limit_x, limit_x + 1)
                if dy or dx:
                    padded = np.pad(out[i], ((limit_y, limit_y), (limit_x, limit_x), (0, 0)), mode="edge")
                    out[i] = padded[limit_y - dy:limit_y - dy + height, limit_x - dx:limit_x - dx + width]
        if self.contrast > 0 or self.brightness > 0:
            contrast = 1.0 + rng.uniform(-self.contrast, self.contrast, (count, 1, 1, 1))
            brightness = 255.0 * rng.uniform(-self.brightness, self.brightness, (count, 1, 1, 1))
            mean = out.mean(axis=(1, 2, 3), keepdims=True)
            out = np.clip((out - mean) * contrast + mean + brightness, 0.0, 255.0)
        return out.astype(np.float32)


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """(H, W, C) float image turned by `angle` radians (clockwise on screen when positive) about
    its centre: bilinear sampling, coordinates outside the image take the nearest edge pixel."""
    height, width = image.shape[:2]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cos, sin = np.cos(angle), np.sin(angle)
    # each output pixel samples the input at the inverse rotation of its offset from the centre
    src_y = np.clip(cy + (y - cy) * cos - (x - cx) * sin, 0, height - 1)
    src_x = np.clip(cx + (y - cy) * sin + (x - cx) * cos, 0, width - 1)
    y0, x0 = np.floor(src_y).astype(np.int64), np.floor(src_x).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
    top = image[y0, x0] * (1 - wx) + image[y0, x1] * wx
    bottom = image[y1, x0] * (1 - wx) + image[y1, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


class IdentityBatches:
    """`batches(step)` -> (images float32 (P*K, H, W, C), labels int32 (P*K,))."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, identities_per_batch: int,
                 images_per_identity: int, seed: int, augment: Augment | None = None):
        labels = np.asarray(labels)
        members = {int(i): np.flatnonzero(labels == i) for i in np.unique(labels)}
        self.members = {i: m for i, m in members.items() if len(m) >= 2}
        self.left_out = sorted(i for i, m in members.items() if len(m) < 2)
        if len(self.members) < 2:
            raise ValueError(f"Metric learning needs at least two identities with two or more images; "
                             f"the training split has {len(self.members)}.")
        if identities_per_batch < 2 or images_per_identity < 2:
            raise ValueError("A batch needs at least 2 identities x 2 images. Received: "
                             f"{identities_per_batch} x {images_per_identity}")
        self.identities = np.asarray(sorted(self.members))
        self.per_batch = min(identities_per_batch, len(self.identities))
        self.per_identity = images_per_identity
        self.images, self.labels, self.seed, self.augment = images, labels, seed, augment

    @property
    def batch_size(self) -> int:
        return self.per_batch * self.per_identity

    def steps_per_epoch(self, cap: int = 0) -> int:
        """About one pass over the training images per epoch."""
        images = sum(len(m) for m in self.members.values())
        steps = max(1, images // self.batch_size)
        return min(steps, cap) if cap > 0 else steps

    def indices(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 31, int(step)])
        chosen = rng.choice(self.identities, self.per_batch, replace=False)
        picks = []
        for identity in chosen:
            members = self.members[int(identity)]
            picks.append(rng.choice(members, self.per_identity, replace=len(members) < self.per_identity))
        return np.concatenate(picks)

    def __call__(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        indices = self.indices(step)
        images = self.images[indices].astype(np.float32)
        if self.augment is not None:
            images = self.augment(images, np.random.default_rng([self.seed, 37, int(step)]))
        return images, self.labels[indices].astype(np.int32)
