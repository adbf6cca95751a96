"""`kts detection predict IMG... --out DIR`: annotated images and a JSON of boxes.

Start-up matters here: no data pipeline, plotting or COCO evaluation code is imported, and
the model is loaded without its training state (`compile=False`)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

import tasks.detection.detector  # noqa: F401 - registers YoloDetector for loading
from pipelines.detection_ops import Letterbox
from shared.io import atomic_write_bytes, atomic_write_json
from shared.task import Run
from tasks.detection import plots
from tasks.detection.evaluation import unletterbox


def _read(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"Input image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err}); expected a JPEG/PNG/... file") \
            from None


def predict(run: Run, inputs: list[str], out: Path | None = None,
            score_threshold: float = 0.25) -> list[dict]:
    for path in inputs:  # a wrong path fails before seconds of model loading
        if not Path(path).is_file():
            raise FileNotFoundError(f"Input image not found: {path}")
    model = keras.models.load_model(run.dir.require_model(), compile=False)
    names = json.loads(run.dir.training_json.read_text())["class_names"]
    letterbox = Letterbox(run.config.data.image_size)
    results = []
    for path in inputs:
        image = _read(path)
        element = letterbox({"image": image, "boxes": np.zeros((0, 4), np.float32)})
        found = model.predict_on_batch(element["image"][None].astype(np.float32))  # final boxes
        found = {k: keras.ops.convert_to_numpy(v)[0] for k, v in found.items()}
        count = int(found["num_detections"])
        keep = found["scores"][:count] >= score_threshold
        boxes = unletterbox(found["boxes"][:count], element["letterbox"],
                            element["orig_size"])[keep]
        classes, scores = found["classes"][:count][keep], found["scores"][:count][keep]
        results.append({"path": path, "detections": [
            {"class": names[int(c)], "score": float(s), "box": [float(v) for v in b]}
            for b, c, s in zip(boxes, classes, scores)]})
        print(f"{path}: {len(boxes)} objects " + ", ".join(
            f"{names[int(c)]} {s:.2f}" for c, s in zip(classes[:10], scores[:10])))
        if out:
            drawn = plots.draw_detections(image, boxes, classes, scores, names)
            buffer = __import__("io").BytesIO()
            Image.fromarray(drawn).save(buffer, format="PNG")
            atomic_write_bytes(Path(out) / f"{Path(path).stem}.png", buffer.getvalue())
    if out:
        atomic_write_json(Path(out) / "detections.json", results)
    return results
