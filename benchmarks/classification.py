"""Training throughput: the project's ResNet-18 pipeline + fit() against plain PyTorch.

Both sides train a CIFAR-style ResNet-18 (3x3 stride-1 stem, no max-pool, BasicBlocks
[2, 2, 2, 2] of 64/128/256/512 filters, ~11.17M parameters) with SGD on the same synthetic
uint8 32x32x3 images (10 classes), in this process, one after the other:

- ours: `tasks.classification.models.build_classifier` fed by the grain training stream of
  `pipelines.builder.train_dataset`, optimizer from `shared.training.make_optimizer`,
  `model.fit()`;
- peer: the same network in plain PyTorch, batches sliced from an in-memory tensor with a
  fresh permutation per epoch (channels_last, bf16 autocast when our precision is bf16,
  `torch.compile` with --torch-compile).

Epoch 1 (compilation, warm-up) is reported apart; images/s is the mean over epochs 2..E.
The input pipeline alone (steady, >= 50 batches) is timed too: can it keep up with fit()?

    KERAS_BACKEND=jax .venv/bin/python benchmarks/classification.py --images 1024 --epochs 2
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/classification.py --images 1024 --epochs 2
    # GPU machine (defaults there: 50,000 images, batch 512, bf16):
    KERAS_BACKEND=jax python benchmarks/classification.py --torch-compile --json bench.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import add_common_args, epoch_timer, finish, parse, run_peer_if_available, summarize  # noqa: E402
from benchmarks.common import on_gpu as common_on_gpu  # noqa: E402
from shared import runtime  # noqa: E402  (stdlib only: safe before Keras is imported)

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
LEARNING_RATE, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, "GPU: 50000 images, batch 512, 4 epochs", "CPU: 512, 128, 2")
    return parse(parser, argv)


def synthetic_data(num_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, *IMAGE_SHAPE), dtype=np.uint8)
    return images, rng.integers(0, NUM_CLASSES, size=num_images).astype(np.int64)


def run_ours(images: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> dict:
    """The project's own stack: ArraySource -> grain stream -> build_classifier -> fit()."""
    import keras

    from pipelines import builder, ops
    from pipelines.sources import ArraySource
    from shared.config import TrainConfig
    from shared.training import make_optimizer
    from tasks.classification.models import build_classifier

    steps = len(images) // args.batch_size
    source = ArraySource(images, labels, [f"class_{i}" for i in range(NUM_CLASSES)])

    def stream():
        return builder.train_dataset(source, batch_size=args.batch_size, seed=0,
                                     ops=[ops.one_hot(NUM_CLASSES)], finalize=ops.to_fit_tuple,
                                     start_step=0)

    iterator = iter(stream())
    next(iterator)  # thread pools started
    start, timed_batches = time.perf_counter(), max(steps, 50)
    for _ in range(timed_batches):
        next(iterator)
    pipeline_images_per_s = timed_batches * args.batch_size / (time.perf_counter() - start)

    model = build_classifier("resnet18", IMAGE_SHAPE, NUM_CLASSES, augmentation=None)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd",
                         learning_rate=LEARNING_RATE, momentum=MOMENTUM,
                         weight_decay=WEIGHT_DECAY, schedule="constant", precision=args.precision)
    model.compile(optimizer=make_optimizer(config, steps),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))

    timer = epoch_timer()

    model.fit(stream(), steps_per_epoch=steps, epochs=args.epochs, verbose=0, shuffle=False,
              callbacks=[timer])
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {**summarize(timer.seconds, steps * args.batch_size), "trainable_params": trainable,
            "pipeline_images_per_s": pipeline_images_per_s}


def run_peer(images: np.ndarray, labels: np.ndarray, args: argparse.Namespace, bf16: bool) -> dict:
    """The same network and optimizer in plain PyTorch, batches sliced from a tensor."""
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)]

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True),
                                      *conv_bn(cout, cout, 3, 1))
            projection = stride != 1 or cin != cout
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if projection else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    device = "cuda" if torch.cuda.is_available() else "cpu"
    blocks: list[nn.Module] = [*conv_bn(3, 64, 3, 1), nn.ReLU(inplace=True)]
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for index in range(2):
            blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and index == 0 else 1))
            cin = cout
    blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, NUM_CLASSES)]
    model = nn.Sequential(*blocks).to(device, memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                nesterov=True, weight_decay=WEIGHT_DECAY)
    step_model = torch.compile(model) if args.torch_compile else model
    x_all = torch.from_numpy(images).to(device).permute(0, 3, 1, 2)  # NCHW view, NHWC memory
    y_all = torch.from_numpy(labels).to(device)
    loss_fn = nn.CrossEntropyLoss()
    steps = len(images) // args.batch_size
    epoch_seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        for step in range(steps):
            index = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = x_all[index].float().div_(255.0).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(step_model(x), y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        loss.item()  # waits for the device
        epoch_seconds.append(time.perf_counter() - start)
    return {**summarize(epoch_seconds, steps * args.batch_size), "trainable_params": params,
            "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "version": torch.__version__}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    backend = runtime.select_backend(args.backend)
    import keras  # noqa: F401  (after select_backend)

    on_gpu = common_on_gpu()
    args.images = args.images or (50_000 if on_gpu else 512)
    args.epochs = args.epochs or (4 if on_gpu else 2)
    args.batch_size = args.batch_size or (512 if on_gpu else 128)
    policy = runtime.set_precision(args.precision)
    environment = runtime.environment()
    device = "gpu" if on_gpu else "cpu"
    images, labels = synthetic_data(args.images)
    print(f"{args.images} images, batch {args.batch_size}, {args.epochs} epochs "
          f"(1 warm-up), {backend} on {device}, {policy}", flush=True)

    ours = run_ours(images, labels, args)
    rows = [(f"Keras {environment['versions']['keras']} {backend} fit()", device, policy, ours)]
    peer = run_peer_if_available(args, lambda: run_peer(images, labels, args, bf16=policy == "mixed_bfloat16"),
                                 ours["trainable_params"])
    if peer:
        compiled = "torch.compile" if args.torch_compile else "eager"
        rows.append((f"PyTorch {peer['version']} {compiled}", peer["device"],
                     "bf16 autocast" if policy == "mixed_bfloat16" else "float32", peer))

    print(f"\n{'stack':<34} {'device':<8} {'batch':>5} {'precision':<15} {'images/s':>10} {'1st epoch s':>11}")
    for name, where, precision, result in rows:
        print(f"{name:<34} {where:<8} {args.batch_size:>5} {precision:<15} "
              f"{result['images_per_s']:>10,.1f} {result['first_epoch_s']:>11.1f}")
    print(f"input pipeline alone (grain):      {ours['pipeline_images_per_s']:,.0f} images/s")
    print(f"parameters (trainable): ours {ours['trainable_params']:,}"
          + (f", peer {peer['trainable_params']:,}" if peer else ""))
    ratio = ours["images_per_s"] / peer["images_per_s"] if peer else None
    if ratio is not None:
        print(f"ratio ours/peer (steady images/s): {ratio:.2f}x")

    return finish(args, {"environment": environment, "settings": vars(args), "precision": policy,
                         "ours": ours, "peer": peer, "ratio_ours_over_peer": ratio})


if __name__ == "__main__":
    main()
