"""Verification and identification metrics over distances (numpy; a smaller distance means
more alike). Tested alone on hand-made distances.

- `best_threshold`: the distance threshold with the highest accuracy on some pairs (same when
  distance <= threshold), the midpoint between two neighbouring distances.
- `kfold_accuracy`: per fold, the accuracy at the threshold chosen on the other folds.
- `roc`: ROC AUC, EER and TAR at given FARs; a FAR is resolved only when there are at least
  1 / FAR different-person pairs, otherwise it is reported as None with the reason.
- `pair_scores`: ROC AUC and the accuracy at the best threshold of some pairs (the per-epoch
  validation metrics `val_auc` / `val_accuracy`).
- `identification`: rank-k accuracy of probes against a gallery, and open-set rejection: a
  probe whose person is left out of the gallery must be farther than the threshold from all.
"""

from __future__ import annotations

import numpy as np


def distances_of(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Euclidean distances of unit embeddings, pairwise by index."""
    return np.linalg.norm(embeddings[first] - embeddings[second], axis=1)


def cosine_distances_of(vectors: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return 1.0 - np.sum(unit[first] * unit[second], axis=1)


def accuracy_at(distances, same, threshold: float) -> float:
    return float(np.mean((np.asarray(distances) <= threshold) == np.asarray(same, bool)))


def best_threshold(distances, same) -> float:
    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if not len(distances):
        raise ValueError("No pairs to choose a threshold on.")
    order = np.argsort(distances, kind="stable")
    sorted_d, sorted_same = distances[order], same[order]
    # threshold after the k-th smallest distance: k accepted. correct = same among the first k
    # + different among the rest.
    correct = np.concatenate([[0], np.cumsum(sorted_same)]) + \
        np.concatenate([[(~sorted_same).sum()], (~sorted_same).sum() - np.cumsum(~sorted_same)])
    valid = np.ones(len(correct), bool)
    valid[1:-1] = sorted_d[1:] > sorted_d[:-1]  # cannot cut between equal distances
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        return float(sorted_d[0] - 1e-6)
    if k == len(sorted_d):
        return float(sorted_d[-1] + 1e-6)
    return float((sorted_d[k - 1] + sorted_d[k]) / 2)


def kfold_accuracy(distances, same, fold) -> dict:
    distances, same, fold = np.asarray(distances), np.asarray(same, bool), np.asarray(fold)
    accuracies, thresholds = [], []
    for k in np.unique(fold):
        test = fold == k
        threshold = best_threshold(distances[~test], same[~test])
        thresholds.append(threshold)
        accuracies.append(accuracy_at(distances[test], same[test], threshold))
    return {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
            "per_fold": [round(a, 6) for a in accuracies], "thresholds": [round(t, 6) for t in thresholds]}


def pair_scores(distances, same) -> dict:
    """{"auc": ROC AUC, "accuracy": accuracy at `best_threshold`, "threshold": it} of some pairs."""
    from sklearn.metrics import roc_auc_score

    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    if same.all() or not same.any():
        raise ValueError(f"ROC needs same and different pairs; received {int(same.sum())} same, "
                         f"{int((~same).sum())} different.")
    threshold = best_threshold(distances, same)
    return {"auc": float(roc_auc_score(same, -distances)), "accuracy": accuracy_at(distances, same, threshold),
            "threshold": threshold}


def roc(distances, same, fars=(1e-2, 1e-3)) -> dict:
    from sklearn.metrics import roc_auc_score, roc_curve

    distances, same = np.asarray(distances, np.float64), np.asarray(same, bool)
    negatives, positives = int((~same).sum()), int(same.sum())
    if not negatives or not positives:
        raise ValueError(f"ROC needs same and different pairs; received {positives} same, {negatives} different.")
    fpr, tpr, thresholds = roc_curve(same, -distances)
    auc = float(roc_auc_score(same, -distances))
    crossing = np.flatnonzero(fpr >= 1 - tpr)[0]
    if crossing == 0:
        eer = float(fpr[0])
    else:  # linear interpolation between the two ROC points around fpr = 1 - tpr
        x0, x1 = fpr[crossing - 1], fpr[crossing]
        y0, y1 = 1 - tpr[crossing - 1], 1 - tpr[crossing]
        t = (y0 - x0) / ((x1 - x0) - (y1 - y0)) if (x1 - x0) != (y1 - y0) else 0.0
        eer = float(x0 + t * (x1 - x0))
    tar = {}
    for far in fars:
        key = f"{far:g}"
        if negatives * far < 1:
            tar[key] = {"tar": None, "note": f"needs >= {int(round(1 / far)):,} different-person pairs to "
                                             f"resolve FAR {far:g}; there are {negatives:,}"}
        else:
            tar[key] = {"tar": float(tpr[fpr <= far].max()), "note": ""}
    step = max(1, len(fpr) // 400)  # a few hundred points are enough for the plot
    return {"auc": auc, "eer": eer, "tar_at_far": tar, "positives": positives, "negatives": negatives,
            "curve": {"fpr": fpr[::step].round(5).tolist() + [1.0], "tpr": tpr[::step].round(5).tolist() + [1.0]},
            "thresholds_finite": bool(np.isfinite(thresholds[1:]).all())}


def identification(distance_matrix: np.ndarray, probe_labels, gallery_labels, threshold: float | None = None,
                   ranks=(1, 5)) -> dict:
    """`distance_matrix` [probes, gallery]; gallery holds one entry per person (closed set).
    Open-set rejection (with `threshold`): each probe's own person is removed from the
    gallery; the probe is rejected when every other entry is farther than the threshold."""
    distance_matrix = np.asarray(distance_matrix, np.float64)
    probe_labels, gallery_labels = np.asarray(probe_labels), np.asarray(gallery_labels)
    order = np.argsort(distance_matrix, axis=1, kind="stable")
    ranked = gallery_labels[order]
    hits = ranked == probe_labels[:, None]
    result = {f"rank{r}": float(hits[:, :r].any(axis=1).mean()) if len(hits) else None for r in ranks}
    result["probes"], result["gallery"] = int(len(probe_labels)), int(len(gallery_labels))
    if threshold is not None and len(hits):
        others = np.where(gallery_labels[None, :] == probe_labels[:, None], np.inf, distance_matrix)
        result["open_set_rejection"] = float((others.min(axis=1) > threshold).mean())
        best = order[:, 0]
        nearest = distance_matrix[np.arange(len(best)), best]
        result["accepted_and_correct"] = float(((nearest <= threshold) & hits[:, 0]).mean())
        result["threshold"] = float(threshold)
    return result


def gallery_split(labels, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One gallery image per person (seeded), the rest probes; people with one image are
    gallery only. Returns (gallery indices, probe indices)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 41])
    gallery, probes = [], []
    for person in np.unique(labels):
        members = np.flatnonzero(labels == person)
        pick = rng.integers(len(members))
        gallery.append(members[pick])
        probes.extend(np.delete(members, pick))
    return np.asarray(gallery, np.int64), np.sort(np.asarray(probes, np.int64))


class Eigenfaces:
    """PCA eigenfaces: fitted on grey training images, compared by cosine distance."""

    def __init__(self, components: int):
        self.components = components

    @staticmethod
    def _flat(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float64)
        grey = images.mean(axis=-1) if images.ndim == 4 else images
        return grey.reshape(len(grey), -1) / 255.0

    def fit(self, images: np.ndarray) -> Eigenfaces:
        flat = self._flat(images)
        self.mean = flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat - self.mean, full_matrices=False)
        self.basis = vt[:min(self.components, len(vt))]
        return self

    def transform(self, images: np.ndarray) -> np.ndarray:
        return (self._flat(images) - self.mean) @ self.basis.T


class LocalBinaryPatterns:
    """Uniform local binary patterns (Ojala et al.): each pixel's 8 neighbours on a circle of
    `radius` (rounded to pixels) compared with it make an 8-bit code; the 58 codes with at most
    two 0/1 transitions keep their own bin, the rest share one (59 bins). A histogram per cell
    of a `cells` x `cells` grid, normalised and square-rooted (Hellinger), concatenated: no
    training, compared by Euclidean distance. A second baseline beside eigenfaces: a descriptor
    fitted to nobody (87.0% / AUC 0.948 on the 32 px `olivetti` pairs of seed 0, 82.6% / 0.916 on seed 1).

    `threshold` > 0 (grey levels, 0-255): local ternary patterns (Tan and Triggs) instead: a
    neighbour counts as brighter when it is at least `threshold` above the centre and as darker
    when at least `threshold` below, which makes two codes per pixel (brighter ones, darker
    ones), each histogrammed as above: twice the values, and flat or noisy regions no longer flip
    codes on differences of a grey level or two. Grey is the sum of the three channels of an RGB
    image (3 x the threshold there), so integer pixels compare exactly."""

    BINS = 59

    def __init__(self, radius: int = 1, cells: int = 4, threshold: float = 0.0):
        self.radius, self.cells, self.threshold = int(radius), int(cells), float(threshold)
        if self.threshold < 0:
            raise ValueError(f"The LBP threshold must be >= 0 (0: plain LBP). Received: {threshold}")
        codes = np.arange(256)
        bits = (codes[:, None] >> np.arange(8)) & 1
        transitions = (bits != np.roll(bits, -1, axis=1)).sum(axis=1)
        uniform = transitions <= 2
        self.bin_of = np.full(256, self.BINS - 1, np.int64)
        self.bin_of[uniform] = np.arange(int(uniform.sum()))

    @property
    def codes_per_pixel(self) -> int:
        return 2 if self.threshold else 1

    @property
    def size(self) -> int:
        """Values per image."""
        return self.codes_per_pixel * self.cells**2 * self.BINS

    def offsets(self) -> list[tuple[int, int]]:
        """(dy, dx) of the 8 neighbours, bit k for neighbour k."""
        r = self.radius
        return [(int(round(-r * np.sin(2 * np.pi * k / 8))), int(round(r * np.cos(2 * np.pi * k / 8))))
                for k in range(8)]

    def codes(self, images: np.ndarray) -> np.ndarray:
        """[N, H - 2r, W - 2r, 1 or 2] bin indices of grey images [N, H, W] (or RGB [N, H, W, 3]):
        the LBP code, or the ternary patterns' brighter and darker codes."""
        images = np.asarray(images, np.float32)
        grey = images.sum(axis=-1) if images.ndim == 4 else images  # comparisons of means: exact sums
        margin = self.threshold * (images.shape[-1] if images.ndim == 4 else 1)
        r = self.radius
        h, w = grey.shape[1:]
        if min(h, w) <= 2 * r + self.cells:
            raise ValueError(f"LBP with radius {r} and {self.cells}x{self.cells} cells needs images over "
                             f"{2 * r + self.cells} pixels a side; these are {h}x{w}.")
        centre = grey[:, r:h - r, r:w - r]
        brighter = np.zeros(centre.shape, np.int64)
        darker = np.zeros(centre.shape, np.int64)
        for k, (dy, dx) in enumerate(self.offsets()):
            neighbour = grey[:, r + dy:h - r + dy, r + dx:w - r + dx]
            brighter |= (neighbour >= centre + margin).astype(np.int64) << k
            if margin:
                darker |= (neighbour <= centre - margin).astype(np.int64) << k
        return self.bin_of[np.stack([brighter, darker] if margin else [brighter], axis=-1)]

    def transform(self, images: np.ndarray) -> np.ndarray:
        bins = self.codes(images)
        n, h, w, k = bins.shape
        row = np.minimum(np.arange(h) * self.cells // h, self.cells - 1)
        col = np.minimum(np.arange(w) * self.cells // w, self.cells - 1)
        cell = row[:, None] * self.cells + col[None, :]  # [h, w]
        index = ((np.arange(n)[:, None, None, None] * self.cells**2 + cell[None, :, :, None]) * k
                 + np.arange(k)) * self.BINS + bins
        counts = np.bincount(index.ravel(), minlength=n * self.cells**2 * k * self.BINS).astype(np.float64)
        counts = counts.reshape(n, self.cells**2 * k, self.BINS)
        counts /= np.maximum(counts.sum(axis=2, keepdims=True), 1.0)
        return np.sqrt(counts).reshape(n, -1) / np.sqrt(self.cells**2 * k)  # unit norm: each histogram adds 1

    @classmethod
    def for_size(cls, image_size: int, radius: int | None = None, cells: int = 0,
                 threshold: float = 0.0) -> LocalBinaryPatterns:
        """Radius 1 and 4x4 cells up to 32 px (measured best there), radius 2 and 8x8 cells above;
        `radius` / `cells` given (non-zero): those instead."""
        default = cls(1, 4) if image_size <= 32 else cls(2, 8)
        return cls(radius or default.radius, cells or default.cells, threshold)
