"""Evaluate stage: the stylizer on the content photos (loss terms, stylized copies for the
report) and its speed, images/s at each of eval.timing_sizes (square, batch 1, compiled,
after a warm-up call)."""

from __future__ import annotations

import time

import numpy as np

from shared.io import atomic_write_json
from shared.task import Run
from tasks.style import data as data_lib
from tasks.style import images as image_lib
from tasks.style.config import StyleConfig
from tasks.style.losses import PerceptualLoss
from tasks.style.training import load_network, style_blend


def images_per_second(network, side: int, min_seconds: float = 1.0, max_calls: int = 20) -> float:
    image = np.random.default_rng(0).uniform(0, 255, (1, side, side, 3)).astype(np.float32)
    network.predict_on_batch(image)  # compile
    calls, started = 0, time.perf_counter()
    while calls < max_calls and (calls < 2 or time.perf_counter() - started < min_seconds):
        np.asarray(network.predict_on_batch(image))
        calls += 1
    return calls / (time.perf_counter() - started)


def evaluate(run: Run) -> dict:
    from keras import ops

    config: StyleConfig = run.config
    network = load_network(run)
    perceptual = PerceptualLoss(config.model)
    side = 2 * config.stylizer.crop_size
    styles = data_lib.style_images(config.data, run.data_root, quiet=True)
    grams = [ops.convert_to_tensor(g) for g in
             perceptual.style_targets([image_lib.fit_side(s, side) for s in styles], style_blend(config))]
    photos, _ = data_lib.content_photos(config.data, run.data_root, side, quiet=True)
    _, held_out = data_lib.split_photos(len(photos), config.data.val_photos, config.seed)
    terms = {"content": [], "style": [], "tv": []}
    for i, photo in enumerate(photos):
        photo = image_lib.fit_side(photo, side)
        stylized = np.asarray(network.predict_on_batch(photo[None]))[0]
        found = perceptual.terms(stylized[None], perceptual.content_target(photo), grams)
        for key in terms:
            terms[key].append(float(ops.convert_to_numpy(found[key])))
        image_lib.save_image(photo, run.dir.evaluation / f"content_{i}.png")
        image_lib.save_image(stylized, run.dir.evaluation / f"stylized_{i}.png")
    speed = {str(size): round(images_per_second(network, size), 3) for size in config.eval.timing_sizes}
    # every photo, the validation ones included: an illustration and a check at full size, not a
    # test score (there is no test photo), so no search ever reads it
    results = {"features": perceptual.mode, "side": side, "photos": len(photos), "validation_photos": held_out,
               "mean_terms": {k: float(np.mean(v)) for k, v in terms.items()}, "terms": terms,
               "images_per_second": speed}
    atomic_write_json(run.dir.evaluation / "results.json", results)
    print(f"style evaluate: {len(photos)} photos at {side} px, mean terms "
          + ", ".join(f"{k} {v:.4g}" for k, v in results["mean_terms"].items())
          + "; images/s " + ", ".join(f"{k} px {v:.2f}" for k, v in speed.items()))
    return results
