"""Face datasets by identity: Olivetti, one-folder-per-person trees (the LFW layout) and LFW's
`pairs.txt`; identity splits and deterministic verification pairs.

Every image is read once, converted to RGB uint8 at `size` x `size` (grey tiled, RGBA's alpha
dropped, 16-bit scaled down to 8 bits), and kept in memory (`Faces`). Files that do not decode
are skipped and listed in `Faces.skipped` with the reason, never raised. A `crop(rgb, size)`
callable (a face detector: tasks/faces/detect.py) may turn each whole photo into its face crop;
photos it finds no face in (NoFaceFound) are skipped and listed the same way.

    DIR/<person>/<image>          # LFW: lfw/George_W_Bush/George_W_Bush_0001.jpg

LFW's `pairs.txt` (View 2): a header "10<TAB>300", then per fold 300 matched lines
"name<TAB>n1<TAB>n2" and 300 mismatched lines "name1<TAB>n1<TAB>name2<TAB>n2"; image n of a
person is `DIR/name/name_%04d.jpg`. Malformed lines and pairs naming missing or unreadable
files are skipped and listed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pipelines.datasets.folder import IMAGE_EXTENSIONS
from pipelines.images import DEFAULT_MAX_SIDE, bounded_size


class NoFaceFound(ValueError):
    """A face detector (`crop` below) found no face in an image."""


@dataclasses.dataclass
class Faces:
    """RGB uint8 images (N, S, S, 3), int32 identity labels, identity names, source paths."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    paths: list[str]
    skipped: list[dict] = dataclasses.field(default_factory=list)
    detection: dict = dataclasses.field(default_factory=dict)  # the face detector's counts, when one ran

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> Faces:
        indices = np.asarray(indices, np.int64)
        return Faces(self.images[indices], self.labels[indices], self.names,
                     [self.paths[i] for i in indices])

    def identities(self) -> np.ndarray:
        return np.unique(self.labels)


@dataclasses.dataclass
class Pairs:
    """Verification pairs: indices into one `Faces`, 1 for same person, and a fold per pair."""

    first: np.ndarray
    second: np.ndarray
    same: np.ndarray
    fold: np.ndarray
    skipped: list[dict] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.same)

    def to_dict(self, faces: Faces) -> dict:
        return {"pairs": [[faces.paths[a], faces.paths[b], int(s), int(f)]
                          for a, b, s, f in zip(self.first, self.second, self.same, self.fold)],
                "columns": ["first", "second", "same", "fold"], "skipped": self.skipped}


def to_uint8(image: Image.Image) -> Image.Image:
    """Any PIL image as RGB 8-bit: 16-bit and 32-bit grey scaled by their maximum (PIL's own
    conversion clips them to white), palette and alpha images converted, alpha dropped."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, np.float64)
        top = float(array.max()) if array.size else 0.0
        array = array * (255.0 / top) if top > 0 else array
        image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    return image.convert("RGB")


def read_face(path: str | os.PathLike, size: int, crop=None) -> np.ndarray:
    """uint8 (size, size, 3) of one image file; raises ValueError naming the file when it is
    not a readable image, FileNotFoundError when it is missing. `crop(rgb, size)`, when given,
    turns the whole photo into the face crop (a face detector) and raises NoFaceFound."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    try:
        with Image.open(path) as image:
            target = bounded_size(image.height, image.width, DEFAULT_MAX_SIDE)
            if target != (image.height, image.width):
                image.draft(image.mode, target[::-1])
            image.load()
            rgb = to_uint8(image)
            if crop is None:
                return np.asarray(rgb.resize((size, size), Image.BILINEAR), np.uint8).reshape(size, size, 3)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({type(err).__name__}: {err}); expected "
                         "a JPEG, PNG, ... file") from None
    try:
        return crop(np.asarray(rgb, np.uint8), size)
    except NoFaceFound as err:
        raise NoFaceFound(f"{path}: {err}") from None


def read_faces(paths: list[str], labels: list[int], names: list[str], size: int, crop=None) -> Faces:
    """Reads every file; bad ones, and with a detector (`crop`) those with no face, are skipped
    and listed (path, reason; "no_face": true for the latter)."""
    images, kept_labels, kept_paths, skipped = [], [], [], []
    for path, label in zip(paths, labels):
        try:
            images.append(read_face(path, size, crop))
        except (ValueError, FileNotFoundError) as err:
            skipped.append({"path": str(path), "reason": str(err), **({"no_face": True}
                                                                      if isinstance(err, NoFaceFound) else {})})
            continue
        kept_labels.append(label)
        kept_paths.append(str(path))
    array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return Faces(array, np.asarray(kept_labels, np.int32), list(names), kept_paths, skipped)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def load_identity_folder(path: str | os.PathLike, size: int, crop=None) -> Faces:
    """`path/<person>/<images>`: one label per person folder (sorted names); `crop`: see read_face."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Face folder not found: {path}; expected one folder per person, "
                                "path/<person>/<images> (the LFW layout).")
    people = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels, names = [], [], []
    for person in people:
        files = _image_files(person)
        if not files:
            continue
        names.append(person.name)
        paths.extend(str(f) for f in files)
        labels.extend([len(names) - 1] * len(files))
    if len(names) < 2:
        raise ValueError(f"{path}: found {len(names)} person folder(s) with images; expected at least two, "
                         "path/<person>/<images> (the LFW layout).")
    return read_faces(paths, labels, names, size, crop)


def load_olivetti_faces(data_root: str | os.PathLike, size: int) -> Faces:
    from pipelines.datasets.olivetti import load_olivetti_arrays

    images, labels = load_olivetti_arrays(data_root)
    grey = images[..., 0]
    if size != grey.shape[1]:
        grey = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR)) for g in grey])
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    root = Path(data_root) / "olivetti-faces" / "olivettifaces.mat"
    return Faces(np.ascontiguousarray(rgb, np.uint8), labels.astype(np.int32),
                 [f"person_{p:02d}" for p in range(labels.max() + 1)],
                 [f"{root}#{i}" for i in range(len(labels))])


# Splits and pairs -----------------------------------------------------------------------------
def split_identities(identities, counts: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """A seeded partition of `identities` into groups of the given sizes (in the order of
    `counts`; a count of -1 takes the rest). Each group sorted."""
    order = np.random.default_rng([seed, 17]).permutation(np.asarray(identities))
    groups, start = {}, 0
    rest = [name for name, count in counts.items() if count < 0]
    fixed = sum(count for count in counts.values() if count >= 0)
    if fixed + (1 if rest else 0) > len(order) or (not rest and fixed > len(order)):
        raise ValueError(f"Cannot split {len(order)} identities into {counts}: too few identities.")
    for name, count in counts.items():
        take = len(order) - fixed if count < 0 else count
        groups[name] = np.sort(order[start:start + take])
        start += take
    return groups


def all_pairs(faces: Faces, identities, seed: int, folds: int = 10) -> Pairs:
    """Every same-person pair of `identities` plus as many different-person pairs (drawn
    without repetition, seeded), each side split evenly into `folds` folds. A person with one
    image has no positive pair: listed in `skipped`."""
    rng = np.random.default_rng([seed, 23])
    members = {int(i): np.flatnonzero(faces.labels == i) for i in identities}
    skipped = [{"path": faces.names[i], "reason": "only one image: no same-person pair"}
               for i, m in members.items() if len(m) == 1]
    same = [(a, b) for m in members.values() for k, a in enumerate(m) for b in m[k + 1:]]
    pool = np.concatenate([m for m in members.values()]) if members else np.zeros(0, np.int64)
    different: set[tuple[int, int]] = set()
    possible = (len(pool) * (len(pool) - 1)) // 2 - len(same)
    wanted = min(len(same), possible)
    while len(different) < wanted:
        a, b = rng.choice(pool, 2, replace=False)
        if faces.labels[a] != faces.labels[b]:
            different.add((int(min(a, b)), int(max(a, b))))
    different_list = sorted(different)
    pairs = [(a, b, 1) for a, b in same] + [(a, b, 0) for a, b in different_list]
    if not pairs:
        return Pairs(*(np.zeros(0, np.int64) for _ in range(4)), skipped=skipped)
    array = np.asarray(pairs, np.int64)
    fold = np.zeros(len(array), np.int64)
    for value in (0, 1):  # each fold gets its share of same and of different pairs
        where = np.flatnonzero(array[:, 2] == value)
        fold[rng.permutation(where)] = np.arange(len(where)) % folds
    return Pairs(array[:, 0], array[:, 1], array[:, 2], fold, skipped)


# LFW pairs.txt --------------------------------------------------------------------------------
def lfw_image_path(root: Path, name: str, number: int) -> Path:
    return root / name / f"{name}_{number:04d}.jpg"


def parse_lfw_pairs(pairs_file: str | os.PathLike, root: str | os.PathLike) -> tuple[list[tuple], list[dict]]:
    """The pairs of LFW's `pairs.txt` as (path1, path2, same, fold) tuples, and the skipped
    lines ({"path", "line", "reason"}: malformed, or naming a file that is not there)."""
    pairs_file, root = Path(pairs_file), Path(root)
    if not pairs_file.is_file():
        raise FileNotFoundError(f"pairs file not found: {pairs_file}")
    try:
        lines = pairs_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{pairs_file}: not a text file ({err}); expected LFW's pairs.txt") from None
    header = lines[0].split() if lines else []
    if len(header) != 2 or not all(h.isdigit() for h in header) or int(header[1]) < 1:
        raise ValueError(f"{pairs_file}: line 1 should be '<folds> <pairs per set>' (LFW View 2: '10 300'). "
                         f"Received: {lines[0] if lines else '(empty file)'!r}")
    per_fold = 2 * int(header[1])
    pairs, skipped = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split()
        fold = (number - 2) // per_fold
        where = {"path": str(pairs_file), "line": number}
        try:
            if len(fields) == 3:
                name, first, second = fields[0], int(fields[1]), int(fields[2])
                paths = (lfw_image_path(root, name, first), lfw_image_path(root, name, second), 1)
            elif len(fields) == 4:
                paths = (lfw_image_path(root, fields[0], int(fields[1])),
                         lfw_image_path(root, fields[2], int(fields[3])), 0)
            else:
                raise ValueError
        except ValueError:
            if line.strip():
                skipped.append({**where, "reason": f"malformed line {line!r}: expected 'name n1 n2' or "
                                                   "'name1 n1 name2 n2'"})
            continue
        missing = [str(p) for p in paths[:2] if not p.is_file()]
        if missing:
            skipped.append({**where, "reason": f"missing file {missing[0]}"})
            continue
        pairs.append((str(paths[0]), str(paths[1]), paths[2], fold))
    return pairs, skipped


def pairs_from_paths(faces: Faces, listed: list[tuple], skipped: list[dict]) -> Pairs:
    """`Pairs` over `faces` for (path1, path2, same, fold) tuples; a pair whose image was
    skipped while reading is skipped here too."""
    index = {path: i for i, path in enumerate(faces.paths)}
    rows = []
    for a, b, same, fold in listed:
        if a in index and b in index:
            rows.append((index[a], index[b], same, fold))
        else:
            bad = a if a not in index else b
            skipped.append({"path": bad, "reason": "pair dropped: the image could not be read"})
    array = np.asarray(rows, np.int64).reshape(-1, 4)
    return Pairs(array[:, 0], array[:, 1], array[:, 2], array[:, 3], skipped)
