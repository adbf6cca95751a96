"""Train stage: build and compile the classifier, `fit()` it (two phases for transfer learning)."""

from __future__ import annotations

import keras

from shared import training
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.classification import data as data_lib
from tasks.classification.config import AugmentConfig, ClassificationConfig
from tasks.classification.layers import TrainingOnly
from tasks.classification.models import build_classifier, set_backbone_trainable


def augmentation_layers(cfg: AugmentConfig, seed: int) -> keras.Sequential | None:
    """Random layers that run on the accelerator inside the model, in training only."""
    layers = []
    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.translate > 0:
        layers.append(keras.layers.RandomTranslation(cfg.translate, cfg.translate,
                                                     fill_mode="nearest", seed=seed + 1))
    if cfg.rotate > 0:
        layers.append(keras.layers.RandomRotation(cfg.rotate, fill_mode="nearest",
                                                  seed=seed + 2))
    if cfg.zoom > 0:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="nearest", seed=seed + 3))
    if not layers:
        return None
    return TrainingOnly(keras.Sequential(layers, name="random_layers"), name="augmentation")


def build_model(config: ClassificationConfig, splits: data_lib.Splits) -> keras.Model:
    return build_classifier(
        config.model.name, splits.image_shape, len(splits.class_names),
        augmentation=augmentation_layers(config.augment, config.seed),
        dropout_rate=config.model.dropout_rate, weights=config.model.weights or None,
        width_multiplier=config.model.width_multiplier)


def compile_model(model: keras.Model, config: ClassificationConfig, num_classes: int,
                  steps_per_epoch: int, lr_scale: float = 1.0, epochs: int | None = None) -> None:
    top_k = min(config.eval.top_k, num_classes)
    model.compile(
        optimizer=training.make_optimizer(config.train, steps_per_epoch, lr_scale, epochs),
        loss=keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.train.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                 keras.metrics.TopKCategoricalAccuracy(k=top_k, name=f"top{top_k}")],
        jit_compile=training.jit_compile_flag(config.train))


def train(run: Run) -> dict:
    config: ClassificationConfig = run.config
    splits = data_lib.load_splits(config, run.data_root)
    num_classes = len(splits.class_names)
    steps = data_lib.builder.steps_per_epoch(len(splits.train), config.train.batch_size,
                                             config.train.max_steps_per_epoch)
    model = build_model(config, splits)
    validation = (data_lib.eval_stream(config, splits.val, num_classes, config.eval.batch_size)
                  if splits.val is not None else None)
    monitor, mode = ("val_accuracy", "max") if validation is not None else ("loss", "min")
    print(f"classification: {len(splits.train)} train / "
          f"{len(splits.val) if splits.val is not None else 0} val / {len(splits.test)} test "
          f"samples, {num_classes} classes, {steps} steps per epoch, model {config.model.name} "
          f"({model.count_params():,} parameters)")

    def fit(phase_epochs: int, lr_scale: float, subdir: str = ""):
        compile_model(model, config, num_classes, steps, lr_scale, phase_epochs)
        return training.fit(
            model, make_train_data=lambda start: data_lib.train_stream(config, splits, start),
            validation_data=validation, config=config.train, steps_per_epoch=steps,
            checkpoints_dir=run.dir.checkpoints / subdir, logs_dir=run.dir.logs / subdir,
            resume=run.resume, verbose=run.verbose, monitor=monitor, monitor_mode=mode,
            epochs=phase_epochs)

    phases = {}
    if config.model.weights and config.model.freeze_epochs:
        set_backbone_trainable(model, False)
        phases["frozen"] = fit(config.model.freeze_epochs, 1.0, "frozen")
        set_backbone_trainable(model, True)
        phases["fine_tune"] = fit(config.train.epochs - config.model.freeze_epochs,
                                  config.model.fine_tune_lr_factor, "fine_tune")
    else:
        phases["train"] = fit(config.train.epochs, 1.0)
    save_keras(model, run.dir.model_keras)
    summary = {
        "phases": {name: {k: v for k, v in result.items() if k != "history"}
                   for name, result in phases.items()},
        "stopped_reason": next((r["stopped_reason"] for r in phases.values()
                                if r["stopped_reason"]), None),
        "parameters": int(model.count_params()),
        "steps_per_epoch": steps,
        "samples": {"train": len(splits.train), "test": len(splits.test),
                    "val": len(splits.val) if splits.val is not None else 0},
        "skipped": splits.skipped,
    }
    atomic_write_json(run.dir.training_json, summary)
    return summary
