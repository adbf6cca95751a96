"""`YoloDetector`: the network plus its loss (`compute_loss`) and post-processing
(`predict_step` returns final boxes). `fit()` is left alone."""

from __future__ import annotations

import keras

from shared import distribute
from tasks.detection.assigner import TaskAlignedAssigner
from tasks.detection.box_ops import decode_predictions
from tasks.detection.losses import YoloLoss
from tasks.detection.nms import non_max_suppression


@keras.saving.register_keras_serializable(package="kts")
class YoloDetector(keras.Model):
    """Wraps the functional network (raw (B, A, 4*reg_max + C) output)."""

    def __init__(self, network: keras.Model, num_classes: int, image_size: int,
                 reg_max: int = 16, loss_config: dict | None = None,
                 nms_config: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.num_classes, self.image_size, self.reg_max = num_classes, image_size, reg_max
        self.loss_config = dict(loss_config or {})
        self.nms_config = dict(nms_config or {})
        loss = dict(self.loss_config)
        assigner = TaskAlignedAssigner(num_classes, topk=loss.pop("topk", 10),
                                       alpha=loss.pop("alpha", 0.5), beta=loss.pop("beta", 6.0))
        self.yolo_loss = YoloLoss(num_classes, reg_max=reg_max, image_size=image_size,
                                  assigner=assigner, **loss)
        self.part_trackers = {name: keras.metrics.Mean(name=f"{name}_loss")
                              for name in ("box", "class", "dfl")}

    def call(self, images, training=False):
        return self.network(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total, parts = self.yolo_loss(y["boxes"], y["classes"], y_pred)
        for name, tracker in self.part_trackers.items():
            tracker.update_state(parts[name])
        regularization = self.losses
        if regularization:
            total = total + keras.ops.sum(regularization)
        return distribute.replica_loss(total)  # 1/replicas under a TF strategy, as Keras' losses

    @property
    def metrics(self):
        return [*super().metrics, *self.part_trackers.values()]

    def postprocess(self, raw) -> dict:
        """Decode + class-aware NMS -> boxes (B, K, 4) in input pixels, scores, classes,
        num_detections."""
        boxes, probabilities = decode_predictions(raw, self.image_size, self.num_classes,
                                                  self.reg_max)
        boxes = keras.ops.clip(boxes, 0.0, float(self.image_size))  # inside the input image
        return non_max_suppression(boxes, probabilities, **self.nms_config)

    def predict_step(self, *args):
        """The backend's own predict step (its signature differs: JAX passes the state
        too and gets it back), then decoding + NMS on its outputs."""
        outputs = super().predict_step(*args)
        if isinstance(outputs, tuple):  # JAX: (outputs, non_trainable_variables)
            return self.postprocess(outputs[0]), outputs[1]
        return self.postprocess(outputs)

    def get_config(self):
        return {**super().get_config(),
                "network": keras.saving.serialize_keras_object(self.network),
                "num_classes": self.num_classes, "image_size": self.image_size,
                "reg_max": self.reg_max, "loss_config": self.loss_config,
                "nms_config": self.nms_config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kts")
class DetectorWithNMS(keras.Model):
    """Images -> final detections in one call, for export (NMS inside the graph)."""

    def __init__(self, detector: YoloDetector, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector

    def call(self, images):
        return self.detector.postprocess(self.detector(images, training=False))
