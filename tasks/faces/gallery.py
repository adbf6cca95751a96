"""The enrolled-people gallery: one `.npz` file (names, paths, unit embeddings and the
fingerprint of the model that made them), written atomically. Enrolling adds entries; an
image already enrolled for the same person is replaced, never duplicated; nothing is ever
dropped. A damaged file, or one enrolled with another model, is a clear error naming it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from shared.io import atomic_file


class GalleryError(ValueError):
    """A gallery file that cannot be used; the message names it."""


@dataclasses.dataclass
class Gallery:
    names: list[str]
    paths: list[str]
    embeddings: np.ndarray  # float32 [N, D]
    model: str  # fingerprint of the embedding model (sha256 of model.keras)

    def add(self, names: list[str], paths: list[str], embeddings: np.ndarray) -> int:
        """Adds entries; an entry with the same (name, path) is replaced. Returns how many are new."""
        if len(self.embeddings) and embeddings.shape[1] != self.embeddings.shape[1]:
            raise GalleryError(f"Embedding size {embeddings.shape[1]} does not match the gallery's "
                               f"{self.embeddings.shape[1]}.")
        index = {(n, p): i for i, (n, p) in enumerate(zip(self.names, self.paths))}
        rows = [self.embeddings[i] for i in range(len(self.names))]
        new = 0
        for name, path, vector in zip(names, paths, embeddings):
            if (name, path) in index:
                rows[index[(name, path)]] = vector
                continue
            index[(name, path)] = len(self.names)
            self.names.append(name)
            self.paths.append(path)
            rows.append(vector)
            new += 1
        self.embeddings = np.asarray(rows, np.float32).reshape(len(self.names), embeddings.shape[1])
        return new

    def people(self) -> list[str]:
        return sorted(set(self.names))


def model_fingerprint(model_path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(model_path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def load(path: str | Path, model: str | None = None, must_exist: bool = True) -> Gallery:
    """The gallery at `path` (an empty one when absent and not `must_exist`). With `model`, a
    gallery enrolled with another model is refused (its embeddings are not comparable)."""
    path = Path(path)
    if not path.exists():
        if must_exist:
            raise FileNotFoundError(f"Gallery not found: {path}. Enroll people first: "
                                    f"kts faces enroll DIR --gallery {path} --workdir RUN")
        return Gallery([], [], np.zeros((0, 0), np.float32), model or "")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            names, paths = [str(n) for n in data["names"]], [str(p) for p in data["paths"]]
            embeddings = np.asarray(data["embeddings"], np.float32)
        if embeddings.ndim != 2 or len(names) != len(embeddings) or len(paths) != len(names):
            raise ValueError("its arrays disagree in length")
        if not np.isfinite(embeddings).all():
            raise ValueError("it holds non-finite embeddings")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise GalleryError(f"{path} is not a readable gallery ({type(err).__name__}: {err}). Enroll again "
                           "into a new file (kts faces enroll DIR --gallery NEW --workdir RUN).") from None
    gallery = Gallery(names, paths, embeddings, meta.get("model", ""))
    if model and gallery.model and gallery.model != model and len(names):
        raise GalleryError(f"{path} was enrolled with another model (fingerprint {gallery.model}, this run's is "
                           f"{model}): its embeddings cannot be compared. Enroll again with this run's model.")
    return gallery


def save(gallery: Gallery, path: str | Path) -> Path:
    path = Path(path)
    with atomic_file(path, suffix=".npz") as tmp:
        np.savez(tmp, names=np.asarray(gallery.names, dtype=str), paths=np.asarray(gallery.paths, dtype=str),
                 embeddings=gallery.embeddings.astype(np.float32),
                 meta=np.asarray(json.dumps({"model": gallery.model, "format": 1})))
    return path
