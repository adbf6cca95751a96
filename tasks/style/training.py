"""Train stage: the Gatys result for the configured content/style images (gatys/), then the
fast stylizer trained by `fit()` on random crops of the content photos (model.keras)."""

from __future__ import annotations

import json
import time

import keras
import numpy as np

from shared import training, tune_callback
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.style import data as data_lib
from tasks.style import images as image_lib
from tasks.style.config import StyleConfig
from tasks.style.gatys import transfer
from tasks.style.losses import PerceptualLoss
from tasks.style.stylizer import StylizerTrainer, transformation_network


def gatys_dir(run: Run):
    return run.dir.root / "gatys"


def style_blend(config: StyleConfig) -> list[float]:
    weights = list(config.data.style_weights) or [1.0] * len(config.data.styles)
    if len(weights) != len(config.data.styles):
        raise ValueError(f"data.style_weights has {len(weights)} values for {len(config.data.styles)} "
                         "data.styles. Expected one weight per style image.")
    return weights


def run_gatys(run: Run, perceptual: PerceptualLoss, styles: list[np.ndarray]) -> dict:
    config: StyleConfig = run.config
    content = image_lib.load_image(data_lib.resolve(config.data, run.data_root, config.data.content),
                                   config.data.max_side, run.quiet)
    log = None if run.quiet else print
    result = transfer(perceptual, content, styles, config.transfer, style_blend(config), config.seed, log=log)
    folder = gatys_dir(run)
    image_lib.save_image(result.image, folder / "result.png")
    image_lib.save_image(image_lib.fit_side(content, config.transfer.size), folder / "content.png")
    for i, style in enumerate(styles):
        image_lib.save_image(image_lib.fit_side(style, config.transfer.size), folder / f"style_{i}.png")
    info = {"content": config.data.content, "styles": list(config.data.styles), "blend": style_blend(config),
            "optimizer": config.transfer.optimizer, "iterations": result.iterations,
            "seconds": round(result.seconds, 3), "iterations_per_second": result.iterations_per_second,
            "size": list(result.image.shape[:2]), "history": result.history, "features": perceptual.mode}
    atomic_write_json(folder / "result.json", info)
    print(f"style: Gatys result {folder / 'result.png'} ({result.iterations} {config.transfer.optimizer} "
          f"iterations, {result.iterations_per_second:.2f} iterations/s after compiling)")
    return info


def train(run: Run) -> dict:
    config: StyleConfig = run.config
    started = time.perf_counter()
    style_blend(config)  # checked before any work
    perceptual = PerceptualLoss(config.model)
    print(f"style: {perceptual.mode}")
    styles = data_lib.style_images(config.data, run.data_root, run.quiet)
    searching = bool(tune_callback.session_callbacks())  # a `kts style tune` trial
    if searching and config.transfer.iterations > 0:
        print("style: a search trial: no Gatys result (a per-image optimisation, outside val_loss); "
              "the search tunes the fast stylizer")
    gatys = None
    if config.transfer.iterations > 0 and not searching:
        done = gatys_dir(run) / "result.json"  # written last (atomically): the result is complete
        if run.resume and done.exists():
            gatys = json.loads(done.read_text())
            print(f"style: --resume: the Gatys result {gatys_dir(run) / 'result.png'} is kept (not recomputed)")
        else:
            gatys = run_gatys(run, perceptual, styles)

    sc = config.stylizer
    photos, skipped = data_lib.content_photos(config.data, run.data_root, 2 * sc.crop_size, run.quiet)
    trained, held_out = data_lib.split_photos(
        len(photos), config.data.val_photos, config.seed,
        str(data_lib.resolve(config.data, run.data_root, config.data.content_folder)))
    validation = (data_lib.fixed_crops([photos[i] for i in held_out], sc.crop_size, config.data.val_crops,
                                       config.seed),) if held_out else None
    photos = [photos[i] for i in trained]
    grams = perceptual.style_targets([image_lib.fit_side(s, 2 * sc.crop_size) for s in styles], style_blend(config))
    network = transformation_network(sc.filters, sc.residual_blocks)
    model = StylizerTrainer(network, perceptual, grams, name="stylizer_trainer")
    optimizer = training.make_optimizer(config.train, sc.steps_per_epoch)
    model.compile(optimizer=optimizer, jit_compile=training.jit_compile_flag(config.train))
    model(np.zeros((1, sc.crop_size, sc.crop_size, 3), np.float32))  # builds the weights
    print(f"style: fast stylizer, {network.count_params():,} parameters, {len(photos)} content photos "
          f"({len(skipped)} skipped, {len(held_out)} held out for val_loss), {sc.crop_size} px crops, "
          f"{sc.steps_per_epoch} steps per epoch")
    result = training.fit(
        model, make_train_data=lambda start: data_lib.crop_batches(photos, sc.crop_size, config.train.batch_size,
                                                                   config.seed, start),
        validation_data=validation, config=config.train, steps_per_epoch=sc.steps_per_epoch,
        checkpoints_dir=run.dir.checkpoints, logs_dir=run.dir.logs, resume=run.resume, verbose=run.verbose,
        monitor="val_loss" if validation else "loss")
    save_keras(network, run.dir.model_keras)
    history = result["history"]
    seen = config.train.batch_size * sc.steps_per_epoch
    info = {"features": perceptual.mode, "pretrained": perceptual.pretrained,
            "history": {k: history.get(k, []) for k in ("loss", "content", "style", "tv", "epoch_seconds", "val_loss",
                                                        "val_content", "val_style", "val_tv")},
            "images_per_second": [seen / s for s in history.get("epoch_seconds", []) if s > 0],
            "parameters": network.count_params(), "content_photos": len(photos), "validation_photos": held_out,
            "validation_crops": len(validation[0]) if validation else 0,
            "skipped": [{"path": p, "reason": r} for p, r in skipped], "gatys": gatys is not None,
            "resumed_from_step": result["resumed_from_step"], "seconds": round(time.perf_counter() - started, 3)}
    atomic_write_json(run.dir.training_json, info)
    print(f"style: stylizer {run.dir.model_keras}")
    return info


def load_network(run: Run) -> keras.Model:
    """The trained stylizer; a clear error when the run has none."""
    path = run.dir.root / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"No trained stylizer in {run.dir.root} (no model.keras). Train one with "
                                f"`kts style train --workdir {run.dir.root}` (or `kts style run`), or pass the "
                                "--workdir of a trained run.")
    run.dir.require_model()
    return keras.saving.load_model(str(path), compile=False)


def training_info(run: Run) -> dict:
    return json.loads(run.dir.training_json.read_text()) if run.dir.training_json.exists() else {}
