"""Face detection for photos that are not face crops (`data.detect_faces=true`): find the
largest face, rotate it so the eyes are level, crop it with a margin and resize it.

Two detectors, both with their weights inside their pip package (no downloads), chosen by
`data.detector`; install them with `pip install -e .[faces-detect]`:

- `mtcnn` (default): MTCNN (Zhang et al. 2016), the detector FaceNet pipelines use; the
  P-, R- and O-Net weights are read from the `mtcnn` wheel. The package runs them with
  TensorFlow's `tf.keras`, which fails under the JAX backend, so the three small networks and
  the cascade (image pyramid, box regression, NMS, five landmarks) run here in numpy: the crops,
  which are training data, are the same on every backend and need neither TensorFlow nor a GPU.
  A test checks the boxes against the package's own on TensorFlow.
- `opencv`: OpenCV 4.x's bundled Haar cascades (frontal face, then eyes inside the face box;
  OpenCV 5 no longer ships them). When the two eyes are not found the face is cropped without
  rotation and counted (`not_aligned`).

`FaceCropper(detector, margin)(rgb, size)` returns the (size, size, 3) uint8 crop or raises
`NoFaceFound`; `stats` counts images, faces, no-face images, unaligned faces and seconds.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time

import numpy as np
from PIL import Image

from pipelines.datasets.identities import NoFaceFound

DETECTORS = ("mtcnn", "opencv")
PACKAGES = {"mtcnn": ("mtcnn", "mtcnn"), "opencv": ("cv2", "opencv-python-headless<5")}
MAX_EYE_ANGLE = 30.0  # degrees; a steeper eye line from the cascades is taken as a false eye


def missing_package(detector: str) -> str | None:
    """None when `detector` can run, else what to install (a sentence for the error)."""
    if detector not in DETECTORS:
        return f"unknown detector {detector!r}; expected one of {', '.join(DETECTORS)}"
    module, package = PACKAGES[detector]
    if importlib.util.find_spec(module) is None:
        return (f"data.detector={detector} needs the {package!r} package, which is not installed: "
                "pip install -e '.[faces-detect]'")
    if detector == "mtcnn" and not os.path.isfile(os.path.join(_mtcnn_weights(), "onet.lz4")):
        return "data.detector=mtcnn needs mtcnn>=1.0 (its weights in mtcnn/assets/weights): pip install -U mtcnn"
    if detector == "opencv":
        import cv2

        if not os.path.isfile(os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""),
                                           "haarcascade_frontalface_default.xml")):
            return (f"data.detector=opencv needs OpenCV 4.x's bundled Haar cascades; OpenCV {cv2.__version__} "
                    "has none (5.0 dropped them): pip install 'opencv-python-headless<5'")
    return None


def _mtcnn_weights() -> str:
    return os.path.join(importlib.util.find_spec("mtcnn").submodule_search_locations[0], "assets", "weights")


# MTCNN in numpy ---------------------------------------------------------------------------------
# The layer lists of the mtcnn package's PNet/RNet/ONet; their weights come in this order.
_NETS = {
    "pnet": ["conv", "prelu", ("pool", 2, 2, "same"), "conv", "prelu", "conv", "prelu", ("heads", 2)],
    "rnet": ["conv", "prelu", ("pool", 3, 2, "same"), "conv", "prelu", ("pool", 3, 2, "valid"), "conv", "prelu",
             "flatten", "dense", "prelu", ("heads", 2)],
    "onet": ["conv", "prelu", ("pool", 3, 2, "same"), "conv", "prelu", ("pool", 3, 2, "valid"), "conv", "prelu",
             ("pool", 2, 2, "same"), "conv", "prelu", "flatten", "dense", "prelu", ("heads", 3)],
}


def _conv(x, kernel, bias):
    """VALID convolution, stride 1, as one matrix product of the (i, j, channel) patches."""
    kh, kw = kernel.shape[:2]
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    patches = np.concatenate([x[:, i:i + height, j:j + width] for i in range(kh) for j in range(kw)], axis=-1)
    return patches @ kernel.reshape(-1, kernel.shape[-1]) + bias


def _pool(x, size, stride, padding):
    if padding == "same":  # TensorFlow's SAME: the extra padding goes after
        pads = []
        for n in x.shape[1:3]:
            total = max((math.ceil(n / stride) - 1) * stride + size - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return windows.max(axis=(-2, -1))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _run_net(layers, weights, x):
    weights = iter(weights)
    for layer in layers:
        kind = layer if isinstance(layer, str) else layer[0]
        if kind == "conv":
            x = _conv(x, next(weights), next(weights))
        elif kind == "prelu":
            x = np.where(x > 0, x, next(weights) * x)
        elif kind == "pool":
            x = _pool(x, *layer[1:])
        elif kind == "flatten":  # the package permutes to (N, W, H, C) first
            x = x.transpose(0, 2, 1, 3).reshape(len(x), -1)
        elif kind == "dense":
            x = x @ next(weights) + next(weights)
        else:  # heads: box regression, [landmarks,] face probability
            outs = []
            for _ in range(layer[1]):
                kernel, bias = next(weights), next(weights)
                outs.append(x @ kernel.reshape(kernel.shape[-2:]) + bias)
            return outs[:-1] + [_softmax(outs[-1])[..., 1]]
    raise AssertionError("a net ends with its heads")


def _nms(boxes, threshold, method="union"):
    """Greedy NMS over rows [x1, y1, x2, y2, score, ...]; the kept rows, best first."""
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep, alive = [], np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        keep.append(i)
        w = np.maximum(0, np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]))
        h = np.maximum(0, np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]))
        inter = w * h
        base = np.minimum(area[i], area) if method == "min" else area[i] + area - inter
        alive &= inter / np.maximum(base, 1e-12) <= threshold
        alive[i] = False
    return boxes[keep]


def _square(boxes):
    boxes = boxes.copy()
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    boxes[:, 0] += (boxes[:, 2] - boxes[:, 0] - side) / 2
    boxes[:, 1] += (boxes[:, 3] - boxes[:, 1] - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _regress(boxes, offsets):
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += offsets * np.stack([w, h, w, h], -1)
    return boxes


def _patches(image, boxes, size):
    """TensorFlow's crop_and_resize (bilinear, 0 outside) of boxes x1 y1 x2 y2 given in pixels
    and normalised by the image size, as the package does."""
    height, width = image.shape[:2]
    steps = np.arange(size) / (size - 1)
    ys = (boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])) * (height - 1) / height
    xs = (boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])) * (width - 1) / width
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]
    padded = np.pad(image, [(1, 2), (1, 2), (0, 0)])  # out-of-image reads give 0

    def at(yy, xx):
        yy, xx = np.clip(yy, -1, height) + 1, np.clip(xx, -1, width) + 1
        return padded[yy[:, :, None], xx[:, None, :]]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    out = top * (1 - fy) + bottom * fy
    inside = ((ys >= 0) & (ys <= height - 1))[:, :, None] & ((xs >= 0) & (xs <= width - 1))[:, None, :]
    return np.where(inside[..., None], out, 0.0).astype(np.float32)


class MTCNNDetector:
    """MTCNN's three stages with the package's thresholds (0.6, 0.7, 0.8) and NMS settings."""

    def __init__(self, min_face_size: int = 20, min_face_fraction: float = 1 / 16):
        import joblib

        folder = _mtcnn_weights()
        self.weights = {name: [np.asarray(w, np.float32) for w in joblib.load(os.path.join(folder, f"{name}.lz4"))]
                        for name in _NETS}
        self.min_face_size, self.min_face_fraction = min_face_size, min_face_fraction

    def net(self, name, x):
        return _run_net(_NETS[name], self.weights[name], x)

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """[(box x1 y1 x2 y2, landmarks (5, 2) or None)] of every face, best first."""
        height, width = rgb.shape[:2]
        image = (rgb.astype(np.float32) - 127.5) / 128.0
        min_face = max(self.min_face_size, min(height, width) * self.min_face_fraction)
        scale, proposals = 12.0 / min_face, []
        picture = Image.fromarray(rgb)
        while min(height, width) * scale >= 12:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            scaled = (np.asarray(picture.resize(size, Image.BOX), np.float32)[None] - 127.5) / 128.0
            offsets, score = self.net("pnet", scaled)
            iy, ix = np.nonzero(score[0] > 0.6)
            if len(iy):
                reg = offsets[0, iy, ix]
                cells = np.stack([ix * 2 + 1, iy * 2 + 1, ix * 2 + 12, iy * 2 + 12], -1).astype(np.float64)
                boxes = (cells + reg * 11) / np.array([size[0] / width, size[1] / height] * 2)
                proposals.append(_nms(np.column_stack([boxes, score[0, iy, ix]]), 0.5))
            scale *= 0.709
        if not proposals:
            return []
        boxes = _square(_nms(np.concatenate(proposals), 0.7))
        for name, size, threshold in (("rnet", 24, 0.7), ("onet", 48, 0.8)):
            if not len(boxes):
                return []
            outs = self.net(name, _patches(image, boxes[:, :4], size))
            rows = np.column_stack([boxes[:, :4], outs[-1]])  # x1 y1 x2 y2 score [5 x, 5 y]
            if name == "onet":  # landmarks are relative to the box before its regression
                w, h = boxes[:, 2:3] - boxes[:, 0:1] + 1, boxes[:, 3:4] - boxes[:, 1:2] + 1
                marks = outs[1]
                rows = np.column_stack([rows, w * marks[:, :5] + boxes[:, 0:1] - 1,
                                        h * marks[:, 5:] + boxes[:, 1:2] - 1])
            boxes = _regress(rows, outs[0])
            boxes = boxes[boxes[:, 4] > threshold]
            boxes = _nms(boxes, 0.7, "min" if name == "onet" else "union")
            if name == "rnet":
                boxes = _square(boxes)
        return [(row[:4], np.stack([row[5:10], row[10:15]], -1)) for row in boxes]


class OpenCVDetector:
    """OpenCV 4.x's bundled frontal-face and eye Haar cascades."""

    def __init__(self, min_face_size: int = 20, min_face_fraction: float = 1 / 16):
        import cv2

        self.cv2 = cv2
        self.faces = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
        self.eyes = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_eye.xml"))
        self.min_face_size, self.min_face_fraction = min_face_size, min_face_fraction

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        grey = self.cv2.equalizeHist(self.cv2.cvtColor(np.ascontiguousarray(rgb), self.cv2.COLOR_RGB2GRAY))
        min_face = int(max(self.min_face_size, min(grey.shape) * self.min_face_fraction))
        found = self.faces.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_face, min_face))
        result = []
        for x, y, w, h in sorted((tuple(map(int, f)) for f in found), key=lambda f: -f[2] * f[3]):
            box = np.array([x, y, x + w, y + h], np.float64)
            result.append((box, self._eyes(grey[y:y + int(h * 0.6), x:x + w], x, y, w)))
        return result

    def _eyes(self, upper, x, y, w):
        """The two eyes (image-left first, as MTCNN's landmarks) or None: the largest eye found
        in each half of the face's upper part."""
        found = self.eyes.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3, minSize=(max(w // 10, 5),) * 2)
        halves = [None, None]
        for ex, ey, ew, eh in found:
            centre = np.array([x + ex + ew / 2, y + ey + eh / 2])
            side = int(ex + ew / 2 >= w / 2)
            if halves[side] is None or ew * eh > halves[side][1]:
                halves[side] = (centre, ew * eh)
        if halves[0] is None or halves[1] is None:
            return None
        return np.stack([halves[0][0], halves[1][0]] + [np.full(2, np.nan)] * 3)


# Align and crop ---------------------------------------------------------------------------------
def eye_angle(landmarks: np.ndarray | None) -> float | None:
    """Degrees the eye line is turned (image-left eye to image-right eye, y down); None when
    unknown or steeper than MAX_EYE_ANGLE."""
    if landmarks is None or not np.all(np.isfinite(landmarks[:2])):
        return None
    dx, dy = landmarks[1] - landmarks[0]
    angle = math.degrees(math.atan2(dy, dx))
    return angle if abs(angle) <= MAX_EYE_ANGLE else None


def aligned_crop(rgb: np.ndarray, box, angle: float, margin: float, size: int) -> np.ndarray:
    """The square of side max(w, h) * (1 + margin) around the box centre, turned by `angle`
    degrees (eyes level), resized to size x size; outside the photo is black."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1 + margin)
    pixels = int(min(max(size, round(side)), 8 * size))  # sample near full resolution, then reduce
    k, theta = side / pixels, math.radians(angle)
    a, b, d, e = k * math.cos(theta), -k * math.sin(theta), k * math.sin(theta), k * math.cos(theta)
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, pixels / 2
    matrix = (a, b, cx - a * half - b * half, d, e, cy - d * half - e * half)
    patch = Image.fromarray(rgb).transform((pixels, pixels), Image.AFFINE, matrix, Image.BILINEAR)
    if pixels != size:
        patch = patch.resize((size, size), Image.BOX)
    return np.asarray(patch, np.uint8).reshape(size, size, 3)


class FaceCropper:
    """rgb (H, W, 3) uint8 -> the largest face, aligned and cropped, (size, size, 3) uint8."""

    def __init__(self, detector: str = "mtcnn", margin: float = 0.2, min_face_size: int = 20):
        problem = missing_package(detector)
        if problem:
            raise ValueError(problem)
        self.detector = detector
        self.margin = margin
        self.find = (MTCNNDetector if detector == "mtcnn" else OpenCVDetector)(min_face_size)
        self.stats = {"detector": detector, "images": 0, "faces": 0, "no_face": 0, "not_aligned": 0, "seconds": 0.0}

    def __call__(self, rgb: np.ndarray, size: int) -> np.ndarray:
        start = time.perf_counter()
        try:
            self.stats["images"] += 1
            faces = self.find(np.asarray(rgb, np.uint8))
            if not faces:
                self.stats["no_face"] += 1
                raise NoFaceFound(f"no face found by the {self.detector} detector")
            box, landmarks = max(faces, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
            angle = eye_angle(landmarks)
            self.stats["faces"] += 1
            self.stats["not_aligned"] += angle is None
            return aligned_crop(rgb, box, angle or 0.0, self.margin, size)
        finally:
            self.stats["seconds"] += time.perf_counter() - start

    def summary(self) -> dict:
        seconds = self.stats["seconds"]
        return {**self.stats, "seconds": round(seconds, 3),
                "images_per_second": round(self.stats["images"] / seconds, 2) if seconds else None}


def cropper_for(data_config) -> FaceCropper | None:
    """The run's cropper when `data.detect_faces` is set, else None."""
    if not getattr(data_config, "detect_faces", False):
        return None
    return FaceCropper(data_config.detector, data_config.detect_margin)
