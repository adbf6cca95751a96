"""The faces of a run, split by identity (seeded), and its verification pairs.

Nobody in the training identities appears in the evaluation pairs. With LFW's `pairs.txt`
(`data.pairs`) the evaluation identities are the people it names and its folds are kept;
otherwise `data.eval_identities` people are drawn and every same-person pair of them is used
with as many different-person pairs. The deployed threshold is chosen on validation pairs:
of `data.val_identities` further held-out people, or, when that is 0, of the training people
(seen in training: the threshold is then on the tight side, which the report says). The
pairs are written to the run folder (`pairs/*.json`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pipelines.datasets import identities as ids
from shared.io import atomic_write_json
from tasks.faces.config import FacesConfig


@dataclasses.dataclass
class Splits:
    faces: ids.Faces
    train: np.ndarray  # image indices
    eval: np.ndarray
    eval_pairs: ids.Pairs
    val_pairs: ids.Pairs
    identities: dict  # split -> identity labels
    val_seen: bool  # the validation pairs are of training people
    skipped: list[dict]

    def counts(self) -> dict:
        return {"images": len(self.faces), "train_images": len(self.train), "eval_images": len(self.eval),
                **{f"{name}_identities": len(value) for name, value in self.identities.items()},
                "eval_pairs_same": int(self.eval_pairs.same.sum()),
                "eval_pairs_different": int((1 - self.eval_pairs.same).sum()),
                "val_pairs": len(self.val_pairs), "skipped": len(self.skipped),
                **({f"detect_{key}": self.faces.detection[key] for key in
                    ("detector", "no_face", "not_aligned", "seconds", "images_per_second")}
                   if self.faces.detection else {})}


def load_faces(config: FacesConfig, data_root) -> ids.Faces:
    data = config.data
    if data.source == "olivetti":
        faces = ids.load_olivetti_faces(data_root, data.image_size)
    elif data.detect_faces:
        faces = _detected_faces(data)
    else:
        faces = ids.load_identity_folder(data.path, data.image_size)
    if data.max_identities:
        faces = dataclasses.replace(faces.subset(np.flatnonzero(faces.labels < data.max_identities)),
                                    skipped=faces.skipped, detection=faces.detection)
    return faces


_DETECTED: dict = {}  # the last folder's crops: `kts faces run` detects once for train, evaluate and report


def _detected_faces(data) -> ids.Faces:
    """data.detect_faces: the folder's photos as aligned face crops (tasks/faces/detect.py);
    photos with no face are skipped and listed. Kept in memory for the next call with the same
    folder (same files, sizes and times) and settings."""
    from tasks.faces.detect import cropper_for

    root = Path(data.path)
    files = tuple(sorted((str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns)
                         for f in root.rglob("*") if f.is_file())) if root.is_dir() else ()
    key = (str(root.resolve()), data.detector, data.detect_margin, data.image_size, files)
    if key not in _DETECTED:
        crop = cropper_for(data)
        faces = ids.load_identity_folder(data.path, data.image_size, crop)
        faces.detection = crop.summary()
        print(f"faces: {data.detector} found a face in {crop.stats['faces']} of {crop.stats['images']} images "
              f"({crop.stats['no_face']} without one, skipped; {crop.stats['not_aligned']} not aligned) in "
              f"{faces.detection['seconds']:.1f} s")
        _DETECTED.clear()
        _DETECTED[key] = faces
    faces = _DETECTED[key]
    return dataclasses.replace(faces, skipped=list(faces.skipped), detection=dict(faces.detection))


def load_splits(config: FacesConfig, data_root) -> Splits:
    data, seed = config.data, config.seed
    faces = load_faces(config, data_root)
    skipped = list(faces.skipped)
    people = faces.identities()
    if data.pairs:
        listed, pair_skips = ids.parse_lfw_pairs(data.pairs, data.path)
        named = {Path(p).parent.name for a, b, _, _ in listed for p in (a, b)}
        eval_ids = np.asarray([i for i in people if faces.names[i] in named], np.int64)
        rest = np.setdiff1d(people, eval_ids)
        groups = ids.split_identities(rest, {"val": data.val_identities, "train": -1}, seed)
        groups["eval"] = eval_ids
        eval_pairs = ids.pairs_from_paths(faces, listed, pair_skips)
    else:
        groups = ids.split_identities(people, {"eval": data.eval_identities, "val": data.val_identities,
                                               "train": -1}, seed)
        eval_pairs = ids.all_pairs(faces, groups["eval"], seed, config.eval.folds)
    if len(groups["train"]) < 2:
        raise ValueError(f"Only {len(groups['train'])} training identities are left after holding out "
                         f"{len(groups['eval'])} for evaluation and {len(groups['val'])} for validation; "
                         "lower data.eval_identities / data.val_identities.")
    val_seen = len(groups["val"]) == 0
    val_pairs = ids.all_pairs(faces, groups["train"] if val_seen else groups["val"], seed + 1, 1)
    if not len(eval_pairs) or not eval_pairs.same.any() or eval_pairs.same.all():
        raise ValueError(f"The evaluation has {len(eval_pairs)} pairs ({int(eval_pairs.same.sum())} same-person); "
                         "it needs same and different pairs (people with two or more images).")
    skipped += eval_pairs.skipped
    train = np.flatnonzero(np.isin(faces.labels, groups["train"]))
    evaluation = np.flatnonzero(np.isin(faces.labels, groups["eval"]))
    return Splits(faces, train, evaluation, eval_pairs, val_pairs, groups, val_seen, skipped)


def save_pairs(run_dir, splits: Splits) -> None:
    """pairs/eval_pairs.json and pairs/val_pairs.json: the exact pairs scored (deterministic)."""
    folder = Path(run_dir) / "pairs"
    atomic_write_json(folder / "eval_pairs.json", splits.eval_pairs.to_dict(splits.faces))
    atomic_write_json(folder / "val_pairs.json", splits.val_pairs.to_dict(splits.faces))
    atomic_write_json(folder / "identities.json",
                      {name: [splits.faces.names[i] for i in value] for name, value in splits.identities.items()})
