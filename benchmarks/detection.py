"""Detection throughput: the project's YOLOv8-n + fit() against the same network in plain PyTorch.

Both sides run YOLOv8-n (CSPDarknet with C2f and SPPF, PAN-FPN neck, decoupled head with
reg_max=16; Conv = Conv2d without bias + BN + SiLU; 80 classes by default; trainable
parameter counts checked equal) on synthetic uint8 images, in this process, one after the other:

- ours: `tasks.detection.model.build_detector` wrapped in `YoloDetector`, SGD from
  `shared.training.make_optimizer`, `model.fit()` on numpy arrays with the FULL YOLOv8 loss
  (task-aligned assigner + BCE + CIoU + DFL), then the same network with the STAND-IN loss;
- peer: plain PyTorch, STAND-IN loss only (channels_last, bf16 autocast when our precision is
  bf16, `torch.compile` with --torch-compile).

STAND-IN loss = BCE on the class logits + L1 on the box-distribution (DFL) logits against fixed
random targets: network forward+backward, NOT the full YOLO loss/assigner. The like-for-like
training ratio is ours(stand-in)/peer; ours(full loss) shows what the real loss adds.
Training images/s is the mean over epochs 2..E (epoch 1 = compilation/warm-up, reported apart).
Inference, after warm-up: network forward (`network.predict_on_batch`; peer under
`torch.inference_mode`) and decode + NMS (`model.postprocess` under jax.jit / tf.function)
in ms/image at batch 1 and 8. torchvision is not installed, so the peer has no NMS row.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/detection.py --json det-tf.json
    KERAS_BACKEND=jax .venv/bin/python benchmarks/detection.py --json det-jax.json
    # GPU machine (defaults there: 512 images, batch 32, 3 epochs, bf16):
    KERAS_BACKEND=jax python benchmarks/detection.py --torch-compile --json det-h200.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import add_common_args, epoch_timer, finish, parse, run_peer_if_available, summarize  # noqa: E402
from benchmarks.common import on_gpu as common_on_gpu  # noqa: E402
from shared import runtime  # noqa: E402  (stdlib only: safe before Keras is imported)

REG_MAX, MAX_BOXES = 16, 32
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.01, 0.937, 5e-4
INFERENCE_BATCHES = (1, 8)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=640, help="multiple of 32 (default 640)")
    parser.add_argument("--num-classes", type=int, default=80)
    add_common_args(parser, "GPU: 512 images, batch 32, 3 epochs", "CPU: 16, 8, 2")
    return parse(parser, argv)


def synthetic_data(num_images: int, image_size: int, num_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """uint8 images, 1..8 valid xyxy pixel boxes per image (class -1 padding to MAX_BOXES), and
    fixed stand-in targets (one (4 * REG_MAX + C) vector per image, broadcast over anchors)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, image_size, image_size, 3), dtype=np.uint8)
    corner = rng.uniform(0, 0.7 * image_size, size=(num_images, MAX_BOXES, 2))
    extent = rng.uniform(0.05 * image_size, 0.3 * image_size, size=(num_images, MAX_BOXES, 2))
    boxes = np.concatenate([corner, corner + extent], axis=-1).astype(np.float32)
    classes = rng.integers(0, num_classes, size=(num_images, MAX_BOXES)).astype(np.int32)
    classes[np.arange(MAX_BOXES) >= rng.integers(1, 9, size=(num_images, 1))] = -1
    boxes[classes < 0] = 0.0
    targets = np.concatenate([rng.normal(size=(num_images, 1, 4 * REG_MAX)),
                              rng.uniform(size=(num_images, 1, num_classes))], axis=-1).astype(np.float32)
    return {"images": images, "boxes": boxes, "classes": classes, "targets": targets}


def time_calls(function: Callable[..., object], repeats: int, *args: object) -> float:
    """Median seconds of `function(*args)` after one untimed warm-up call."""
    function(*args)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def run_ours(data: dict[str, np.ndarray], args: argparse.Namespace, repeats: int) -> dict:
    import keras

    from shared.config import TrainConfig
    from shared.training import make_optimizer
    from tasks.detection.detector import YoloDetector
    from tasks.detection.model import build_detector

    steps = len(data["images"]) // args.batch_size
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd",
                         learning_rate=LEARNING_RATE, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                         schedule="constant", precision=args.precision)
    network = build_detector("n", args.num_classes, args.image_size, REG_MAX)
    model = YoloDetector(network, args.num_classes, args.image_size, REG_MAX)
    images = data["images"].astype(np.float32)

    def timed_fit(trainable: keras.Model, targets) -> dict:
        timer = epoch_timer()

        trainable.fit(images, targets, batch_size=args.batch_size, epochs=args.epochs, shuffle=False,
                      verbose=0, callbacks=[timer])
        return {**summarize(timer.seconds, steps * args.batch_size), "jit_compile": trainable.jit_compile}

    model.compile(optimizer=make_optimizer(config, steps))
    full = timed_fit(model, {"boxes": data["boxes"], "classes": data["classes"]})
    network.compile(optimizer=make_optimizer(config, steps), loss=stand_in_loss_keras(args.num_classes))
    stand_in = timed_fit(network, data["targets"])

    postprocess = model.postprocess
    if keras.backend.backend() == "jax":
        import jax

        postprocess = jax.jit(model.postprocess)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        postprocess = tf.function(model.postprocess, jit_compile=False)
    forward_ms, nms_ms = {}, {}
    for batch in INFERENCE_BATCHES:
        x = images[np.arange(batch) % len(images)]
        raw = network.predict_on_batch(x)
        forward_ms[batch] = 1e3 * time_calls(network.predict_on_batch, repeats, x) / batch
        nms_ms[batch] = 1e3 * time_calls(lambda r: keras.tree.map_structure(keras.ops.convert_to_numpy, postprocess(r)),
                                         repeats, raw) / batch
    trainable = sum(int(np.prod(w.shape)) for w in network.trainable_weights)
    return {"train_full_loss": full, "train_stand_in": stand_in, "forward_ms_per_image": forward_ms,
            "nms_ms_per_image": nms_ms, "trainable_params": trainable}


def stand_in_loss_keras(num_classes: int) -> Callable:
    from keras import ops

    def stand_in_loss(targets, raw):
        """BCE(class logits) + L1(DFL logits); targets (B, 1, 4 * reg_max + C) broadcast over anchors."""
        box_targets, class_targets = targets[..., :4 * REG_MAX], targets[..., 4 * REG_MAX:]
        box_logits, class_logits = raw[..., :4 * REG_MAX], raw[..., 4 * REG_MAX:]
        bce = ops.maximum(class_logits, 0) - class_logits * class_targets + ops.log1p(ops.exp(-ops.abs(class_logits)))
        return ops.mean(bce) + ops.mean(ops.abs(box_logits - box_targets))

    return stand_in_loss


def build_peer(num_classes: int):
    """YOLOv8-n in plain PyTorch, the layout of tasks/detection/{model,blocks}.py, NCHW."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                             nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03), nn.SiLU(inplace=True))

    class C2f(nn.Module):
        def __init__(self, cin: int, cout: int, repeats: int, shortcut: bool):
            super().__init__()
            self.hidden, self.shortcut = cout // 2, shortcut
            self.conv1 = conv(cin, 2 * self.hidden)
            self.bottlenecks = nn.ModuleList(nn.Sequential(conv(self.hidden, self.hidden, 3),
                                                           conv(self.hidden, self.hidden, 3)) for _ in range(repeats))
            self.conv2 = conv((2 + repeats) * self.hidden, cout)

        def forward(self, x):
            branches = list(self.conv1(x).split(self.hidden, dim=1))
            for bottleneck in self.bottlenecks:
                y = bottleneck(branches[-1])
                branches.append(branches[-1] + y if self.shortcut else y)
            return self.conv2(torch.cat(branches, 1))

    class SPPF(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.conv1, self.conv2 = conv(channels, channels // 2), conv(2 * channels, channels)
            self.pool = nn.MaxPool2d(5, 1, 2)

        def forward(self, x):
            pooled = [self.conv1(x)]
            for _ in range(3):
                pooled.append(self.pool(pooled[-1]))
            return self.conv2(torch.cat(pooled, 1))

    class YoloV8n(nn.Module):
        def __init__(self):  # n: width 0.25 -> channels 16/32/64/128/256, depth 0.33 -> repeats 1/2/2/1, 1
            super().__init__()
            self.stem = conv(3, 16, 3, 2)
            stages = ((16, 32, 1), (32, 64, 2), (64, 128, 2), (128, 256, 1))  # (in, out, C2f repeats)
            self.stages = nn.ModuleList(nn.Sequential(conv(cin, cout, 3, 2), C2f(cout, cout, repeats, True))
                                        for cin, cout, repeats in stages)
            self.sppf = SPPF(256)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.td4, self.out3 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
            self.down1, self.out4 = conv(64, 64, 3, 2), C2f(192, 128, 1, False)
            self.down2, self.out5 = conv(128, 128, 3, 2), C2f(384, 256, 1, False)
            box, cls, levels = 64, max(64, min(num_classes, 100)), (64, 128, 256)  # c2, c3 as in build_detector
            self.box_heads = nn.ModuleList(
                nn.Sequential(conv(c, box, 3), conv(box, box, 3), nn.Conv2d(box, 4 * REG_MAX, 1)) for c in levels)
            self.class_heads = nn.ModuleList(
                nn.Sequential(conv(c, cls, 3), conv(cls, cls, 3), nn.Conv2d(cls, num_classes, 1)) for c in levels)

        def forward(self, images):  # (B, 3, S, S) in 0..255 -> (B, 4 * reg_max + C, A)
            x, features = self.stem(images / 255.0), []
            for stage in self.stages:
                x = stage(x)
                features.append(x)
            p3, p4, p5 = features[1], features[2], self.sppf(x)
            td4 = self.td4(torch.cat([self.up(p5), p4], 1))
            n3 = self.out3(torch.cat([self.up(td4), p3], 1))
            n4 = self.out4(torch.cat([self.down1(n3), td4], 1))
            n5 = self.out5(torch.cat([self.down2(n4), p5], 1))
            levels = [torch.cat([box(n), cls(n)], 1).flatten(2)
                      for n, box, cls in zip((n3, n4, n5), self.box_heads, self.class_heads)]
            return torch.cat(levels, 2)

    return YoloV8n()


def run_peer(data: dict[str, np.ndarray], args: argparse.Namespace, bf16: bool, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_peer(args.num_classes).to(device, memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True,
                                weight_decay=WEIGHT_DECAY)
    step_model = torch.compile(model) if args.torch_compile else model
    images = torch.from_numpy(data["images"]).to(device).permute(0, 3, 1, 2)  # NCHW view, NHWC memory
    targets = torch.from_numpy(data["targets"]).to(device).transpose(1, 2)  # (N, 4 * reg_max + C, 1)
    steps, batch_size = len(images) // args.batch_size, args.batch_size
    epoch_seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for step in range(steps):
            x = images[step * batch_size:(step + 1) * batch_size].float().contiguous(memory_format=torch.channels_last)
            target = targets[step * batch_size:(step + 1) * batch_size]
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                raw = step_model(x).float()
            loss = (F.binary_cross_entropy_with_logits(raw[:, 4 * REG_MAX:], target[:, 4 * REG_MAX:].expand_as(
                raw[:, 4 * REG_MAX:])) + (raw[:, :4 * REG_MAX] - target[:, :4 * REG_MAX]).abs().mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss.item()  # waits for the device
        epoch_seconds.append(time.perf_counter() - start)

    model.eval()
    forward_ms = {}
    for batch in INFERENCE_BATCHES:
        x = images[torch.arange(batch) % len(images)].float().contiguous(memory_format=torch.channels_last)

        def forward(x: torch.Tensor) -> None:
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                step_model(x).float().cpu()  # .cpu() waits for the device, as predict_on_batch returns numpy

        forward_ms[batch] = 1e3 * time_calls(forward, repeats, x) / batch
    return {"train_stand_in": summarize(epoch_seconds, steps * batch_size), "forward_ms_per_image": forward_ms,
            "trainable_params": params, "version": torch.__version__,
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    backend = runtime.select_backend(args.backend)
    import keras  # noqa: F401  (after select_backend)

    on_gpu = common_on_gpu()
    args.images = args.images or (512 if on_gpu else 16)
    args.batch_size = args.batch_size or (32 if on_gpu else 8)
    args.epochs = args.epochs or (3 if on_gpu else 2)
    repeats = 20 if on_gpu else 3
    policy = runtime.set_precision(args.precision)
    environment = runtime.environment()
    device = "gpu" if on_gpu else "cpu"
    data = synthetic_data(args.images, args.image_size, args.num_classes)
    print(f"YOLOv8-n, {args.image_size} px, {args.num_classes} classes, {args.images} images, batch {args.batch_size}, "
          f"{args.epochs} epochs (1 warm-up), {backend} on {device}, {policy}", flush=True)

    ours = run_ours(data, args, repeats)
    peer = run_peer_if_available(
        args, lambda: run_peer(data, args, bf16=policy == "mixed_bfloat16", repeats=repeats),
        ours["trainable_params"])

    keras_name = f"Keras {environment['versions']['keras']} {backend}"
    peer_name = f"PyTorch {peer['version']} {'torch.compile' if args.torch_compile else 'eager'}" if peer else ""
    rows = [(f"{keras_name} fit(), full YOLO loss", ours["train_full_loss"]),
            (f"{keras_name} fit(), stand-in loss", ours["train_stand_in"])]
    rows += [(f"{peer_name}, stand-in loss", peer["train_stand_in"])] if peer else []
    print(f"\nTRAINING ({device}, batch {args.batch_size}, {policy})")
    print(f"{'stack':<58} {'images/s':>9} {'1st epoch s':>11}")
    for name, result in rows:
        print(f"{name:<58} {result['images_per_s']:>9.2f} {result['first_epoch_s']:>11.1f}")
    print("stand-in loss = BCE(class logits) + L1(DFL logits) vs fixed random targets: network forward+backward,"
          " not the full YOLO loss/assigner")
    print(f"\nINFERENCE (ms/image, median of {repeats} after warm-up)\n{'stack':<58} "
          + " ".join(f"{'batch ' + str(b):>9}" for b in INFERENCE_BATCHES))
    inference_rows = [(f"{keras_name} network.predict_on_batch", ours["forward_ms_per_image"]),
                      (f"{keras_name} decode + NMS (compiled postprocess)", ours["nms_ms_per_image"])]
    inference_rows += [(f"{peer_name} forward, inference_mode", peer["forward_ms_per_image"])] if peer else []
    for name, milliseconds in inference_rows:
        print(f"{name:<58} " + " ".join(f"{milliseconds[b]:>9.1f}" for b in INFERENCE_BATCHES))
    print("peer decode + NMS: not measured (torchvision not installed)")
    print(f"\nparameters (trainable): ours {ours['trainable_params']:,}"
          + (f", peer {peer['trainable_params']:,} (match)" if peer else ""))
    ratios = None
    if peer:
        ratios = {"train_stand_in": ours["train_stand_in"]["images_per_s"] / peer["train_stand_in"]["images_per_s"],
                  "train_full_loss_vs_peer_stand_in":
                      ours["train_full_loss"]["images_per_s"] / peer["train_stand_in"]["images_per_s"],
                  **{f"forward_batch{b}": peer["forward_ms_per_image"][b] / ours["forward_ms_per_image"][b]
                     for b in INFERENCE_BATCHES}}
        print("ratio ours/peer (speed, > 1 = ours faster): "
              + ", ".join(f"{name} {value:.2f}x" for name, value in ratios.items()))

    return finish(args, {"environment": environment, "settings": vars(args), "precision": policy,
                         "ours": ours, "peer": peer, "ratios_ours_over_peer": ratios})


if __name__ == "__main__":
    main()
