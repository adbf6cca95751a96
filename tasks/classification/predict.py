"""`kts classification predict IMG...`: top-k classes for image files.

Start-up matters here (users call it from scripts): this module imports no data pipeline,
plotting or evaluation code, the model is loaded without its training state
(`compile=False`) and run eagerly (no graph tracing for a handful of images)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shared.io import atomic_write_json
from shared.task import Run
from tasks.classification.evaluation import softmax
from tasks.classification.layers import load_model

BATCH = 64  # images per eager call


def read_image(path: str, size: int, channels: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, np.uint8).reshape(size, size, channels)
    except FileNotFoundError:
        raise FileNotFoundError(f"Input image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{path}: not a readable image ({err}); expected a JPEG/PNG/... file") \
            from None


def predict(run: Run, inputs: list[str], out: Path | None = None) -> list[dict]:
    for path in inputs:  # a wrong path fails before seconds of model loading
        if not Path(path).is_file():
            raise FileNotFoundError(f"Input image not found: {path}")
    model = load_model(run.dir.require_model(), compile=False)
    results_path = run.dir.evaluation / "results.json"
    channels = int(model.inputs[0].shape[-1])
    size = run.config.data.image_size
    class_names = (json.loads(results_path.read_text())["class_names"]
                   if results_path.exists() else None)
    images = np.stack([read_image(p, size, channels) for p in inputs]).astype(np.float32)
    logits = [np.asarray(model(images[i:i + BATCH], training=False), np.float32)
              for i in range(0, len(images), BATCH)]
    probabilities = softmax(np.concatenate(logits))
    k = min(run.config.eval.top_k, probabilities.shape[-1])
    predictions = []
    for path, probs in zip(inputs, probabilities):
        top = np.argsort(-probs)[:k]
        names = [class_names[i] if class_names else str(i) for i in top]
        predictions.append({"path": path, "top": [{"class": n, "probability": float(probs[i])}
                                                  for n, i in zip(names, top)]})
        print(f"{path}: " + ", ".join(f"{n} {probs[i]:.3f}" for n, i in zip(names, top)))
    if out:
        atomic_write_json(Path(out) / "predictions.json", predictions)
    return predictions
