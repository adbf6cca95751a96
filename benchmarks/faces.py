"""Face embedding throughput: our ArcFace training (P x K stream + fit()) and embedding speed
against a plain PyTorch twin of the same network, in this process, one after the other.

Both sides: a CIFAR ResNet-20 (16/32/64 filters) on 32x32x3 images, then the presets' head
(`--head grid`, the default): the 8x8x64 map average-pooled to 4x4 cells -> BatchNorm ->
flatten (1,024 values) -> dropout 0.4 -> Linear 1,024 -> 128 (no bias) -> BatchNorm -> L2
normalisation, the embedding being the unit-normalised 1,024 grid values (`model.grid=4`,
`model.embedding=grid`); or `--head gap`: global average pooling -> Linear 64 -> 128 -> BatchNorm
-> L2 normalisation, that projection the embedding. An ArcFace head (s=30, m=0.3) over 30
identities, AdamW; synthetic uint8 images, batches of 8 identities x 4 images.

- ours: `tasks.faces.models` fed by `pipelines.identity_batches.IdentityBatches` through
  `pipelines.builder.step_dataset` (augmentation on), `model.fit()`;
- peer: the same network in PyTorch, the same batches (indices) sliced from an in-memory tensor.

Epoch 1 (compilation, warm-up) is reported apart; images/s is the mean over epochs 2..E.
Embeddings/s: the embedding network alone on every image, batch 128, after one warm-up pass.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/faces.py --images 960 --epochs 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import add_common_args, epoch_timer, finish, parse, run_peer_if_available, summarize  # noqa: E402
from shared import runtime  # noqa: E402  (stdlib only: safe before Keras is imported)

IDENTITIES, SIZE, DIM = 30, 32, 128
GRID, DROPOUT = 4, 0.4  # --head grid: the Olivetti presets' (tasks/faces/config.py, _grid_embedding)
P, K = 8, 4
LEARNING_RATE, WEIGHT_DECAY, SCALE, MARGIN = 2e-3, 1e-4, 30.0, 0.3
EMBED_BATCH = 128


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, "GPU: 30000 images, 4 epochs", "CPU: 960 images, 3 epochs (batch is P x K = 32)")
    parser.add_argument("--head", choices=("grid", "gap"), default="grid",
                        help="grid: the Olivetti presets' network (default); gap: global average pooling")
    return parse(parser, argv)


def synthetic_data(num_images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, SIZE, SIZE, 3), dtype=np.uint8)
    return images, (np.arange(num_images) % IDENTITIES).astype(np.int32)


def run_ours(images, labels, batches, args) -> dict:
    import keras

    from pipelines import builder
    from shared.config import TrainConfig
    from shared.training import make_optimizer
    from tasks.faces import models
    from tasks.faces.config import FacesConfig

    steps = len(images) // batches.batch_size
    grid = args.head == "grid"
    projected = models.build_embedding_model("resnet20", SIZE, DIM, dropout_rate=DROPOUT if grid else 0.0,
                                             grid=GRID if grid else 0)
    model = models.training_model(projected, "arcface", IDENTITIES)
    embedding = models.grid_embedding_model(projected) if grid else projected
    config = TrainConfig(epochs=args.epochs, learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY,
                         schedule="constant", precision=args.precision)
    model.compile(optimizer=make_optimizer(config, steps), loss=models.make_loss(FacesConfig()))
    timer = epoch_timer()
    model.fit(builder.step_dataset(batches), steps_per_epoch=steps, epochs=args.epochs, verbose=0,
              shuffle=False, callbacks=[timer])
    models.embed(embedding, images[:EMBED_BATCH], EMBED_BATCH)  # warm-up
    start = time.perf_counter()
    models.embed(embedding, images, EMBED_BATCH)
    embeddings_per_s = len(images) / (time.perf_counter() - start)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {**summarize(timer.seconds, steps * batches.batch_size), "trainable_params": trainable,
            "embeddings_per_s": embeddings_per_s, "losses": timer.losses, "backend": keras.backend.backend()}


def run_peer(images, labels, batches, args) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv_bn(cin, cout, kernel, stride):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout, momentum=0.1,
                                                                                              eps=1e-5)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            self.shortcut = (nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout
                             else nn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    layers, cin = [*conv_bn(3, 16, 3, 1), nn.ReLU()], 16
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            layers.append(Block(cin, filters, 2 if stage and not block else 1))
            cin = filters
    if args.head == "grid":  # the embedding is the normalised grid; the projection trains under the loss
        grid_net = nn.Sequential(*layers, nn.AvgPool2d(8 // GRID), nn.BatchNorm2d(64, momentum=0.1, eps=1e-5),
                                 nn.Flatten())
        projection = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(64 * GRID * GRID, DIM, bias=False),
                                   nn.BatchNorm1d(DIM, momentum=0.1, eps=1e-5))
        embed_net = nn.Sequential(grid_net, projection)
    else:
        embed_net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, DIM, bias=False),
                                  nn.BatchNorm1d(DIM, momentum=0.1, eps=1e-5))
        grid_net = embed_net
    centres = nn.Parameter(torch.empty(DIM, IDENTITIES))
    nn.init.xavier_uniform_(centres)
    parameters = [*embed_net.parameters(), centres]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    y_all = torch.from_numpy(labels.astype(np.int64))
    steps = len(images) // batches.batch_size
    cos_m, sin_m = float(np.cos(MARGIN)), float(np.sin(MARGIN))
    seconds, losses = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for step in range(steps):
            index = torch.from_numpy(batches.indices(epoch * steps + step))
            x, y = x_all[index], y_all[index]
            if torch.rand(()) < 0.5:  # the same amount of augmentation work, roughly: one flip
                x = x.flip(3)
            vectors = F.normalize(embed_net(x), dim=1)
            cosines = (vectors @ F.normalize(centres, dim=0)).clamp(-1 + 1e-6, 1 - 1e-6)
            sines = torch.sqrt(1 - cosines**2)
            margin = torch.where(cosines > np.cos(np.pi - MARGIN), cosines * cos_m - sines * sin_m,
                                 cosines - np.sin(np.pi - MARGIN) * MARGIN)
            target = F.one_hot(y, IDENTITIES).bool()
            loss = F.cross_entropy(SCALE * torch.where(target, margin, cosines), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        losses.append(float(loss.detach()))
        seconds.append(time.perf_counter() - start)
    embed_net.eval()
    with torch.no_grad():
        grid_net(x_all[:EMBED_BATCH])
        start = time.perf_counter()
        for i in range(0, len(x_all), EMBED_BATCH):
            F.normalize(grid_net(x_all[i:i + EMBED_BATCH]), dim=1)
        embeddings_per_s = len(x_all) / (time.perf_counter() - start)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return {**summarize(seconds, steps * batches.batch_size), "trainable_params": trainable,
            "embeddings_per_s": embeddings_per_s, "losses": losses, "device": "cpu",
            "version": torch.__version__}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    backend = runtime.select_backend(args.backend)
    import keras  # noqa: F401  (after select_backend)

    from benchmarks.common import on_gpu
    from pipelines.identity_batches import Augment, IdentityBatches

    gpu = on_gpu()
    args.images = args.images or (30_000 if gpu else 960)
    args.epochs = args.epochs or (4 if gpu else 3)
    policy = runtime.set_precision(args.precision)
    environment = runtime.environment()
    images, labels = synthetic_data(args.images)
    batches = IdentityBatches(images, labels, P, K, seed=0, augment=Augment(True, 0.08, 0.1, 0.2))
    print(f"{args.images} images of {IDENTITIES} identities, batch {P} x {K}, {args.head} head, "
          f"{args.epochs} epochs (1 warm-up), "
          f"{backend} on {'gpu' if gpu else 'cpu'}, {policy}", flush=True)
    ours = run_ours(images, labels, batches, args)
    peer = run_peer_if_available(args, lambda: run_peer(images, labels, batches, args), ours["trainable_params"])
    print(f"\n{'stack':<30} {'train images/s':>15} {'1st epoch s':>12} {'embeddings/s':>13}")
    rows = [(f"Keras {environment['versions']['keras']} {backend}", ours)]
    if peer:
        rows.append((f"PyTorch {peer['version']} eager", peer))
    for name, result in rows:
        print(f"{name:<30} {result['images_per_s']:>15,.1f} {result['first_epoch_s']:>12.1f} "
              f"{result['embeddings_per_s']:>13,.1f}")
    ratios = {key: ours[key] / peer[key] for key in ("images_per_s", "embeddings_per_s")} if peer else None
    if ratios:
        print(f"ours/peer: training {ratios['images_per_s']:.2f}x, embedding {ratios['embeddings_per_s']:.2f}x")
    return finish(args, {"environment": environment, "settings": vars(args), "precision": policy,
                         "ours": ours, "peer": peer, "ratios_ours_over_peer": ratios})


if __name__ == "__main__":
    main()
