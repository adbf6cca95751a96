"""`kts faces verify A B`, `kts faces enroll DIR --gallery G`, `kts faces identify IMG... --gallery G`
on a trained run, with the run's deployed threshold unless `--threshold` overrides it.

Images are read as the training pipeline reads them (any size; grey, RGBA and 16-bit images
converted to 8-bit RGB). `verify` and `identify` name a missing or unreadable input and stop
before loading the model; `enroll` skips unreadable images, counts and lists them.

When the run was trained with `data.detect_faces=true`, the inputs go through the same face
detector first (largest face, eyes levelled, cropped: tasks/faces/detect.py); an input without
a face stops `verify`/`identify` naming it and is skipped and listed by `enroll`. The exported
SavedModel stays a crop-in model: it embeds the image it is given, so callers of it detect
and crop first.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.datasets.folder import IMAGE_EXTENSIONS
from pipelines.datasets.identities import read_face
from shared.io import atomic_write_json
from shared.task import Run
from tasks.faces import gallery as gallery_lib


def _threshold(run: Run) -> tuple[float, str]:
    override = run.options.get("threshold")
    if override is not None:
        return float(override), "--threshold"
    from tasks.faces.training import read_threshold

    return float(read_threshold(run)["threshold"]), "the run's deployed threshold"


def _embed(run: Run, images: np.ndarray) -> np.ndarray:
    from tasks.faces import models

    model = models.load_embedding_model(run.dir.require_model())
    return models.embed(model, images, run.config.eval.batch_size, run.config.eval.flip_average)


def _cropper(run: Run):
    """The run's face detector (data.detect_faces), or None."""
    from tasks.faces.detect import cropper_for

    return cropper_for(run.config.data)


def _read_all(paths: list[str], size: int, crop=None) -> np.ndarray:
    return np.stack([read_face(p, size, crop) for p in paths])  # raises naming the file


def verify(run: Run, inputs: list[str], out: Path | None = None) -> dict:
    if len(inputs) != 2:
        raise ValueError(f"verify needs two images, A B. Received {len(inputs)}: {' '.join(inputs)}")
    threshold, source = _threshold(run)
    images = _read_all(inputs, run.config.data.image_size, _cropper(run))
    first, second = _embed(run, images)
    distance = float(np.linalg.norm(first - second))
    same = distance <= threshold
    result = {"first": inputs[0], "second": inputs[1], "distance": distance, "same": bool(same),
              "threshold": threshold, "threshold_source": source}
    print(f"{inputs[0]} vs {inputs[1]}: distance {distance:.4f} -> {'same person' if same else 'different people'} "
          f"(threshold {threshold:.4f}, {source})")
    if out is not None:
        atomic_write_json(Path(out) / "verify.json", result)
    return result


def _enrollment_entries(folder: Path) -> list[tuple[str, Path]]:
    """(person, image) for DIR/<person>/<images> and DIR/<person>.<ext> (one image per person)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"Enrollment folder not found: {folder}; expected DIR/<person>/<images> or "
                                "DIR/<person>.jpg")
    entries = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue
        if item.is_dir():
            entries.extend((item.name, f) for f in sorted(item.iterdir())
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        elif item.suffix.lower() in IMAGE_EXTENSIONS:
            entries.append((item.stem, item))
    if not entries:
        raise ValueError(f"{folder}: no images found; expected DIR/<person>/<images> or DIR/<person>.jpg "
                         f"(extensions {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return entries


def _gallery_path(run: Run) -> Path:
    path = run.options.get("gallery")
    if not path:
        raise ValueError("--gallery FILE is needed (the gallery file to write or read, e.g. people.npz)")
    return Path(path)


def enroll(run: Run, inputs: list[str], out: Path | None = None) -> dict:
    from tasks.faces.gallery import model_fingerprint

    if len(inputs) != 1:
        raise ValueError(f"enroll takes one folder. Received {len(inputs)}: {' '.join(inputs)}")
    path = _gallery_path(run)
    fingerprint = model_fingerprint(run.dir.require_model())
    gallery = gallery_lib.load(path, fingerprint, must_exist=False)  # a damaged file stops us here
    size, crop = run.config.data.image_size, _cropper(run)
    images, names, paths, skipped = [], [], [], []
    for person, image_path in _enrollment_entries(Path(inputs[0])):
        try:
            images.append(read_face(image_path, size, crop))
        except (ValueError, FileNotFoundError) as err:
            skipped.append({"path": str(image_path), "reason": str(err)})
            continue
        names.append(person)
        paths.append(str(image_path.resolve()))
    for item in skipped:
        print(f"skipped {item['reason']}")
    if not images:
        raise ValueError(f"{inputs[0]}: none of its {len(skipped)} images could be read; the gallery "
                         f"{path} is unchanged.")
    new = gallery.add(names, paths, _embed(run, np.stack(images)))
    gallery.model = fingerprint
    gallery_lib.save(gallery, path)
    result = {"gallery": str(path), "enrolled": len(names), "new": new, "skipped": skipped,
              "people": len(gallery.people()), "images": len(gallery.names)}
    print(f"enrolled {len(names)} images ({new} new) of {len(set(names))} people into {path}: now "
          f"{result['people']} people, {result['images']} images; {len(skipped)} skipped")
    result["trained_on"] = sorted(set(names) & _whitened_against(run))
    if result["trained_on"]:
        shown = ", ".join(result["trained_on"][:5]) + (" ..." if len(result["trained_on"]) > 5 else "")
        print(f"warning: {len(result['trained_on'])} of these people were training people of this run ({shown}), "
              "and its embedding is whitened against them (model.whitening): it tells them apart less well "
              "than new people (docs/results.md, faces). To enroll the people you trained on, train with "
              "--set model.whitening=0 --set model.lbp_radii=")
    return result


def _whitened_against(run: Run) -> set[str]:
    """The training people's names when the run's embedding is whitened against them."""
    identities = run.dir.root / "pairs" / "identities.json"
    if not run.config.model.whitening or not identities.exists():
        return set()
    try:
        return set(json.loads(identities.read_text()).get("train", []))
    except (json.JSONDecodeError, AttributeError):
        return set()


def identify(run: Run, inputs: list[str], out: Path | None = None) -> list[dict]:
    path = _gallery_path(run)
    for item in inputs:  # a wrong path fails before loading anything
        if not Path(item).is_file():
            raise FileNotFoundError(f"Input image not found: {item}")
    from tasks.faces.gallery import model_fingerprint

    gallery = gallery_lib.load(path, model_fingerprint(run.dir.require_model()))
    if not gallery.names:
        raise ValueError(f"{path} holds nobody; enroll people first.")
    threshold, source = _threshold(run)
    vectors = _embed(run, _read_all(inputs, run.config.data.image_size, _cropper(run)))
    distances = np.linalg.norm(vectors[:, None] - gallery.embeddings[None], axis=-1)
    results = []
    for item, row in zip(inputs, distances):
        best = int(np.argmin(row))
        known = bool(row[best] <= threshold)
        results.append({"path": item, "match": gallery.names[best] if known else "unknown",
                        "nearest": gallery.names[best], "distance": float(row[best]), "threshold": threshold})
        print(f"{item}: {gallery.names[best] if known else 'unknown'} (nearest {gallery.names[best]}, distance "
              f"{row[best]:.4f}, threshold {threshold:.4f}, {source})")
    if out is not None:
        atomic_write_json(Path(out) / "identify.json", results)
    return results
