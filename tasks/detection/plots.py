"""Detection report figures: PR curves, confusion matrix with background, drawn detections.

    png = pr_curves_png(coco_evaluate(...))
    image = draw_detections(image, boxes, classes, scores, class_names, true_boxes, true_classes)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Ultralytics' 20-colour palette: distinct, readable on photos.
_PALETTE = (
    "FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
    "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7",
)


def class_color(index: int) -> tuple[int, int, int]:
    """RGB colour of class `index` (the palette repeats after 20 classes)."""
    hex_color = _PALETTE[int(index) % len(_PALETTE)]
    return int(hex_color[0:2], 16), int(hex_color[2:4], 16), int(hex_color[4:6], 16)


def pr_curves_png(result: dict[str, Any]) -> bytes:
    """Per-class precision-recall curves at IoU 0.5 from `coco_evaluate`'s result."""
    from shared import plots  # matplotlib: imported by the figures only, not by `predict`

    return plots.pr_curves(result["pr_curves"])


def confusion_png(matrix: np.ndarray, class_names: Sequence[str], normalize: bool = True) -> bytes:
    """`confusion_matrix`'s (C+1, C+1) counts, the last row/column labelled "background"."""
    from shared import plots

    return plots.confusion_matrix(matrix, [*map(str, class_names), "background"], normalize=normalize)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


TRUTH_COLOR = (0, 255, 255)  # ground truth: dashed cyan, a colour no class of the palette has


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: Sequence[float], color: tuple[int, int, int],
                      dash: int = 4, width: int = 1) -> None:
    x0, y0, x1, y1 = box
    for start, end in (((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))):
        length = max(abs(end[0] - start[0]), abs(end[1] - start[1]))
        steps = max(1, int(length // dash))
        for i in range(0, steps, 2):
            t0, t1 = i / steps, min(1.0, (i + 1) / steps)
            draw.line([(start[0] + (end[0] - start[0]) * t0, start[1] + (end[1] - start[1]) * t0),
                       (start[0] + (end[0] - start[0]) * t1, start[1] + (end[1] - start[1]) * t1)],
                      fill=color, width=width)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    true_boxes: np.ndarray | None = None,
    true_classes: np.ndarray | None = None,
) -> np.ndarray:
    """Returns a copy of uint8 `image` (H, W[, C]) with boxes drawn, as (H, W, 3) uint8.

    Predicted boxes are solid outlines in their class colour with a "name 0.87" label
    (highest score drawn last, on top); true boxes, when given, are dashed cyan outlines
    (`TRUTH_COLOR`), unlabelled. Line width and label size scale with the image, so they stay
    readable when the image is shown shrunk in a report grid.
    `true_classes` is accepted for symmetry and currently unused in the drawing.
    """
    del true_classes
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    canvas = Image.fromarray(array).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    height, width = array.shape[:2]
    line_width = max(2, round(min(height, width) / 160))
    font = _font(max(12, round(min(height, width) / 24)))
    if true_boxes is not None:
        for box in np.asarray(true_boxes, dtype=np.float64).reshape(-1, 4):
            _dashed_rectangle(draw, box.tolist(), TRUTH_COLOR, dash=4 * line_width,
                              width=line_width)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    for index in np.argsort(scores, kind="stable"):
        x0, y0, x1, y1 = boxes[index].tolist()
        color = class_color(classes[index])
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=color, width=line_width)
        cls = int(classes[index])
        name = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        label = f"{name} {scores[index]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left, bottom - top + 2
        text_y = y0 - text_h if y0 - text_h >= 0 else y0  # above the box, inside when at the top edge
        draw.rectangle([x0, text_y, x0 + text_w + 2, text_y + text_h], fill=color)
        luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
        draw.text((x0 + 1 - left, text_y + 1 - top), label, font=font,
                  fill=(0, 0, 0) if luminance > 140 else (255, 255, 255))
    return np.asarray(canvas)


def legend_entries(class_names: Sequence[str], with_truth: bool = True) -> list[tuple[str, str, str]]:
    """(label, colour, line style) per class for a grid of `draw_detections` images."""
    entries = [(f"predicted {name}", "#" + _PALETTE[i % len(_PALETTE)], "-")
               for i, name in enumerate(class_names)]
    if with_truth:
        entries.append(("true box (any class)", "#" + "".join(f"{v:02X}" for v in TRUTH_COLOR), "--"))
    return entries


def detections_grid_png(images: Sequence[np.ndarray], captions: Sequence[str], ncols: int = 2,
                        legend: Sequence[tuple[str, str, str]] | None = None) -> bytes:
    """Drawn images (sizes may differ: padded black at bottom/right) in a captioned grid, two
    across by default so the box labels stay readable at page width; `legend` (from
    `legend_entries`) is drawn above the grid."""
    from shared import plots

    rgb = [np.asarray(Image.fromarray(np.asarray(im, dtype=np.uint8).squeeze()).convert("RGB")) for im in images]
    if not rgb:
        raise ValueError("detections_grid_png needs at least one image. Received: 0")
    height, width = max(im.shape[0] for im in rgb), max(im.shape[1] for im in rgb)
    grid = np.zeros((len(rgb), height, width, 3), dtype=np.uint8)
    for i, im in enumerate(rgb):
        grid[i, : im.shape[0], : im.shape[1]] = im
    return plots.image_grid(grid, list(captions), ncols=ncols, cell_inches=(6.0, 4.9),
                            interpolation="antialiased", legend=legend, caption_size=11)
