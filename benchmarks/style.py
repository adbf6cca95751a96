"""Style transfer speed: ours (`tasks.style`, Keras 3 on the chosen backend) against a PyTorch
implementation of the same networks and losses, in one script, random weights.

1. Gatys: VGG19 features (content block4_conv2, style block1..5_conv1, the same random
   weights copied into both), the same normalised content / Gram style / TV losses, Adam on
   the image (lr 4, pixels clipped to 0..255), N iterations at S x S. Time: the iterations
   after the first (which includes compiling), extrapolated to N.
2. The fast stylizer (32 filters, 5 residual blocks, instance norm, nearest x2 + conv
   upsampling): inference images/s at S x S, batch 1, after a warm-up call.

    KERAS_BACKEND=jax .venv/bin/python benchmarks/style.py            # 512 px, 500 iterations
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/style.py --quick   # 128 px, 20 iterations
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--iterations", type=int, default=500, help="Gatys Adam iterations (default 500)")
    parser.add_argument("--quick", action="store_true", help="128 px, 20 iterations")
    parser.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    parser.add_argument("--skip", choices=("gatys", "stylizer"), action="append", default=[])
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.iterations = 128, 20
    if args.iterations < 2:
        parser.error("--iterations must be >= 2")
    return args


def _images(size: int):
    rng = np.random.default_rng(0)
    content = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    style = rng.uniform(0, 255, (size, size, 3)).astype(np.float32)
    return content, style


def ours_gatys(perceptual, size: int, iterations: int) -> dict:
    from keras import ops

    from tasks.style.gatys import make_adam_step

    content, style = _images(size)
    step = make_adam_step(perceptual)
    content_features = ops.convert_to_tensor(perceptual.content_target(content))
    grams = [ops.convert_to_tensor(g) for g in perceptual.style_targets([style])]
    variables = perceptual.variables()
    x = ops.convert_to_tensor(content[None])
    m, v = ops.zeros_like(x), ops.zeros_like(x)
    lr = ops.convert_to_tensor(np.float32(4.0))
    started = time.perf_counter()
    x, m, v, terms = step(x, m, v, ops.convert_to_tensor(np.float32(1)), lr, content_features, grams, variables)
    ops.convert_to_numpy(terms["style"])
    first = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(2, iterations + 1):
        x, m, v, terms = step(x, m, v, ops.convert_to_tensor(np.float32(i)), lr, content_features, grams, variables)
    final = {k: float(ops.convert_to_numpy(t)) for k, t in terms.items()}
    steady = time.perf_counter() - started
    per_iteration = steady / (iterations - 1)
    return {"first_iteration_s": first, "iterations_per_second": 1 / per_iteration,
            "seconds_for_n": per_iteration * iterations, "final_terms": final}


def torch_vgg(perceptual):
    """The same VGG19 layers in PyTorch with the Keras weights copied in; returns (module
    list, names)."""
    import torch

    layers, names = [], []
    for layer in perceptual.extractor.layers[1:]:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kernel, bias = layer.get_weights()
            conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], 3, padding=1)
            conv.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
            conv.bias.data = torch.from_numpy(bias.copy())
            layers += [conv, torch.nn.ReLU()]
            names += [layer.name, layer.name + "_relu"]
        elif kind == "MaxPooling2D":
            layers.append(torch.nn.MaxPool2d(2, 2))
            names.append(layer.name)
    for module in layers:
        module.requires_grad_(False)
    return layers, names


def torch_gatys(perceptual, size: int, iterations: int) -> dict:
    import torch

    layers, names = torch_vgg(perceptual)
    wanted = {name + "_relu": name for name in perceptual.layer_names}
    mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)

    def features(image):
        x = image.flip(1) - mean  # RGB -> BGR, caffe mean
        found = {}
        for module, name in zip(layers, names):
            x = module(x)
            if name in wanted:
                found[wanted[name]] = x
        return found

    def gram(f):
        b, c, h, w = f.shape
        flat = f.reshape(b, c, h * w)
        return flat @ flat.transpose(1, 2) / (h * w)

    content, style = (torch.from_numpy(a.transpose(2, 0, 1)[None].copy()) for a in _images(size))
    cfg = perceptual.config
    with torch.no_grad():
        target_content = features(content)[perceptual.content_layer]
        style_found = features(style)
        target_grams = [gram(style_found[n]) for n in perceptual.style_layers]
    image = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=4.0)

    def step():
        optimizer.zero_grad()
        found = features(image)
        c = ((found[perceptual.content_layer] - target_content) ** 2).mean() / (target_content**2).mean()
        s = sum(float(w) * ((gram(found[n]) - t) ** 2).mean() / ((t**2).mean() + 1e-8)
                for n, w, t in zip(perceptual.style_layers, perceptual.style_layer_weights, target_grams))
        dy, dx = image[:, :, 1:] - image[:, :, :-1], image[:, :, :, 1:] - image[:, :, :, :-1]
        tv = ((dy**2).mean() + (dx**2).mean()) / 255**2
        total = cfg.content_weight * c + cfg.style_weight * s + cfg.tv_weight * tv
        total.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 255)
        return total

    started = time.perf_counter()
    step()
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(iterations - 1):
        total = step()
    steady = time.perf_counter() - started
    per_iteration = steady / (iterations - 1)
    return {"first_iteration_s": first, "iterations_per_second": 1 / per_iteration,
            "seconds_for_n": per_iteration * iterations, "final_total": float(total.detach())}


def ours_stylizer(size: int) -> dict:
    from tasks.style.evaluation import images_per_second
    from tasks.style.stylizer import transformation_network

    network = transformation_network(32, 5)
    return {"images_per_second": images_per_second(network, size, min_seconds=3.0, max_calls=200),
            "parameters": network.count_params()}


def torch_stylizer(size: int) -> dict:
    import torch
    from torch import nn

    def block(cin, cout, k, s, relu=True):
        parts = [nn.Conv2d(cin, cout, k, s, padding=k // 2), nn.InstanceNorm2d(cout, affine=True)]
        return nn.Sequential(*parts, nn.ReLU()) if relu else nn.Sequential(*parts)

    class Net(nn.Module):
        def __init__(self, f=32, blocks=5):
            super().__init__()
            self.e1, self.e2, self.e3 = block(3, f, 9, 1), block(f, 2 * f, 3, 2), block(2 * f, 4 * f, 3, 2)
            self.res = nn.ModuleList(nn.Sequential(block(4 * f, 4 * f, 3, 1), block(4 * f, 4 * f, 3, 1, False))
                                     for _ in range(blocks))
            self.d1, self.d2 = block(4 * f, 2 * f, 3, 1), block(2 * f, f, 3, 1)
            self.out = nn.Conv2d(f, 3, 9, padding=4)

        def forward(self, x):
            x = x / 127.5 - 1
            full = x = self.e1(x)
            half = x = self.e2(x)
            x = self.e3(x)
            for r in self.res:
                x = x + r(x)
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")[:, :, :half.shape[2], :half.shape[3]]
            x = self.d1(x)
            x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")[:, :, :full.shape[2], :full.shape[3]]
            x = self.d2(x)
            return 127.5 * (torch.tanh(self.out(x)) + 1)

    net = Net().eval()
    image = torch.rand(1, 3, size, size) * 255
    with torch.no_grad():
        net(image)
        calls, started = 0, time.perf_counter()
        while calls < 200 and (calls < 2 or time.perf_counter() - started < 3.0):
            net(image)
            calls += 1
    return {"images_per_second": calls / (time.perf_counter() - started),
            "parameters": sum(p.numel() for p in net.parameters())}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import keras

    from shared.runtime import environment
    from tasks.style.config import ModelConfig
    from tasks.style.losses import PerceptualLoss

    results = {"backend": keras.backend.backend(), "size": args.size, "iterations": args.iterations,
               "environment": environment()}
    if "gatys" not in args.skip:
        perceptual = PerceptualLoss(ModelConfig())
        results["gatys_ours"] = ours_gatys(perceptual, args.size, args.iterations)
        print(f"Gatys ours ({results['backend']}): {results['gatys_ours']}", flush=True)
        if not args.no_peer:
            results["gatys_torch"] = torch_gatys(perceptual, args.size, args.iterations)
            print(f"Gatys PyTorch: {results['gatys_torch']}", flush=True)
            results["gatys_ratio"] = (results["gatys_ours"]["iterations_per_second"]
                                      / results["gatys_torch"]["iterations_per_second"])
            print(f"Gatys speed ratio ours/PyTorch: {results['gatys_ratio']:.2f}")
    if "stylizer" not in args.skip:
        results["stylizer_ours"] = ours_stylizer(args.size)
        print(f"stylizer ours: {results['stylizer_ours']}", flush=True)
        if not args.no_peer:
            results["stylizer_torch"] = torch_stylizer(args.size)
            print(f"stylizer PyTorch: {results['stylizer_torch']}", flush=True)
            results["stylizer_ratio"] = (results["stylizer_ours"]["images_per_second"]
                                         / results["stylizer_torch"]["images_per_second"])
            print(f"stylizer speed ratio ours/PyTorch: {results['stylizer_ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
