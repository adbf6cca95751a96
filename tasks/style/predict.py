"""`kts style transfer CONTENT STYLE [STYLE ...] --out result.png` (Gatys, no run folder needed)
and `kts style stylize IMAGE ... --workdir RUN --out DIR` (the run's trained stylizer;
images larger than stylizer.max_side go through in overlapping tiles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.task import Run
from tasks.style import images as image_lib
from tasks.style.config import StyleConfig
from tasks.style.tiles import stylize_tiled


def transfer(run: Run, inputs: list[str], out: Path | None = None) -> Path:
    from tasks.style.gatys import transfer as run_transfer
    from tasks.style.losses import PerceptualLoss

    config: StyleConfig = run.config
    if len(inputs) < 2:
        raise ValueError("kts style transfer needs a content image and at least one style image: "
                         "kts style transfer CONTENT STYLE [STYLE ...] --out result.png")
    out = Path(out) if out else Path("result.png")
    if out.is_dir():
        out = out / "result.png"
    blend = list(config.data.style_weights) or [1.0] * (len(inputs) - 1)
    if len(blend) != len(inputs) - 1:
        raise ValueError(f"data.style_weights has {len(blend)} values for {len(inputs) - 1} style images. "
                         "Expected one weight per style image.")
    images = [image_lib.load_image(p, config.data.max_side, run.quiet) for p in inputs]  # all checked first
    perceptual = PerceptualLoss(config.model)
    print(f"style transfer: {perceptual.mode}")
    result = run_transfer(perceptual, images[0], images[1:], config.transfer, blend, config.seed,
                          log=None if run.quiet else print)
    image_lib.save_image(result.image, out)
    print(f"style transfer: {out} ({result.image.shape[1]}x{result.image.shape[0]}, {result.iterations} "
          f"{config.transfer.optimizer} iterations, {result.iterations_per_second:.2f} iterations/s; "
          f"{perceptual.mode})")
    return out


def stylize(run: Run, inputs: list[str], out: Path | None = None) -> list[Path]:
    from tasks.style.training import load_network, training_info

    config: StyleConfig = run.config
    network = load_network(run)
    features = training_info(run).get("features", "unknown features")
    folder = Path(out) if out else run.dir.root / "stylized"
    sc = config.stylizer

    def apply(piece: np.ndarray) -> np.ndarray:
        return np.asarray(network.predict_on_batch(piece[None].astype(np.float32)))[0]

    written = []
    for path in inputs:
        image = image_lib.load_image(path, config.data.max_side, run.quiet)
        tiled = max(image.shape[:2]) > sc.max_side
        stylized = stylize_tiled(apply, image, sc.max_side, sc.tile_overlap)
        target = folder / f"{Path(path).stem}_stylized.png"
        image_lib.save_image(stylized, target)
        written.append(target)
        print(f"{path} -> {target} ({image.shape[1]}x{image.shape[0]}"
              f"{', in tiles of ' + str(sc.max_side) + ' px' if tiled else ''})")
    print(f"style stylize: {len(written)} image(s) in {folder} ({features})")
    return written
