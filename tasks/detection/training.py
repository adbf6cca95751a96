"""Train stage: build the detector, `fit()` it on the augmented stream."""

from __future__ import annotations

import keras

from shared import training
from shared.export import save_keras
from shared.io import atomic_write_json
from shared.task import Run
from tasks.detection import data as data_lib
from tasks.detection import evaluation
from tasks.detection.config import DetectionConfig
from tasks.detection.detector import YoloDetector
from tasks.detection.model import build_detector


def build(config: DetectionConfig, num_classes: int) -> YoloDetector:
    network = build_detector(config.model.variant, num_classes, config.data.image_size,
                             config.model.reg_max, config.model.weights or None)
    loss = {"box_weight": config.loss.box_weight, "class_weight": config.loss.class_weight,
            "dfl_weight": config.loss.dfl_weight, "box_weight_floor": config.loss.box_weight_floor,
            "topk": config.loss.topk,
            "alpha": config.loss.alpha, "beta": config.loss.beta}
    nms = {"max_detections": config.eval.max_detections,
           "iou_threshold": config.eval.iou_threshold,
           "score_threshold": config.eval.score_threshold}
    model = YoloDetector(network, num_classes, config.data.image_size, config.model.reg_max,
                         loss_config=loss, nms_config=nms, name="yolo_detector")
    model.build((None, config.data.image_size, config.data.image_size, 3))
    return model


def train(run: Run) -> dict:
    config: DetectionConfig = run.config
    splits = data_lib.load_splits(config, run.data_root)
    source = splits["train"]
    steps = data_lib.builder.steps_per_epoch(len(source) * config.data.repeat,
                                             config.train.batch_size,
                                             config.train.max_steps_per_epoch)
    model = build(config, len(source.class_names))
    model.compile(optimizer=training.make_optimizer(config.train, steps),
                  jit_compile=training.jit_compile_flag(config.train))
    print(f"detection: {len(source)} training images, {len(source.class_names)} classes "
          f"({', '.join(source.class_names)}), {steps} steps per epoch, YOLOv8-"
          f"{config.model.variant} at {config.data.image_size} px "
          f"({model.count_params():,} parameters)")
    epoch = splits["epoch"]
    if epoch is not None:
        print(f"detection: val_map50 / val_map at epoch ends on {splits['epoch_note']}, every "
              f"{config.eval.epoch_every} epoch(s)")
    else:
        print(f"detection: no val_map50 at epoch ends ({splits['epoch_note']}); kts detection "
              "tune needs it")
    result = training.fit(
        model, make_train_data=lambda start: data_lib.train_stream(config, source, steps, start),
        validation_data=None, config=config.train, steps_per_epoch=steps,
        checkpoints_dir=run.dir.checkpoints, logs_dir=run.dir.logs, resume=run.resume,
        verbose=run.verbose, monitor="val_map50" if epoch is not None else "loss",
        monitor_mode="max" if epoch is not None else "min",
        epoch_metrics=evaluation.epoch_metric(config, epoch) if epoch is not None else None,
        epoch_metrics_every=config.eval.epoch_every)
    save_keras(model, run.dir.model_keras)
    summary = {"phases": {"train": {k: v for k, v in result.items() if k != "history"}},
               "stopped_reason": result["stopped_reason"],
               "parameters": int(model.count_params()), "steps_per_epoch": steps,
               "samples": {"train": len(source), "epoch_metric": len(epoch) if epoch is not None else 0},
               "epoch_metric": splits["epoch_note"], "skipped": splits["skipped"],
               "class_names": list(source.class_names)}
    atomic_write_json(run.dir.training_json, summary)
    return summary


def load(path) -> keras.Model:
    """Loads a trained detector (registers the custom classes by importing them)."""
    return keras.models.load_model(path)
