"""Face verification: identity datasets and LFW pairs on a tiny tree, identity splits and
pairs, the P x K sampler, the metrics on hand-made distances, the losses against plain numpy,
and the task end to end on the smoke preset (export, verify / enroll / identify, bad input)."""

import json

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets import identities as ids
from pipelines.identity_batches import Augment, IdentityBatches
from shared.cli import main
from shared.config import ConfigError
from shared.testing import run_cli
from tasks.faces import verification as V


def _face(path, seed, mode="RGB", size=24):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, (size, size)).astype(np.uint16)).save(path)
    elif mode == "RGBA":
        Image.fromarray(rng.integers(0, 255, (size, size, 4)).astype(np.uint8), "RGBA").save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (size, size, 3)).astype(np.uint8)).save(path)


@pytest.fixture()
def lfw_tree(tmp_path):
    """An LFW-layout tree: 6 people, an RGBA and a 16-bit image, a truncated JPEG, a person
    with one image; pairs.txt with 2 folds of 2 + 2 pairs, a malformed line, a missing file."""
    root = tmp_path / "lfw"
    people = {"Ann_Lee": 3, "Bob_Ray": 3, "Cy_Dee": 3, "Di_Eck": 2, "Ed_Fox": 3, "Flo_Gee": 1}
    for p, (name, count) in enumerate(people.items()):
        for n in range(1, count + 1):
            _face(root / name / f"{name}_{n:04d}.jpg", 10 * p + n)
    _face(root / "Cy_Dee" / "Cy_Dee_0004.png", 99, "RGBA")
    _face(root / "Di_Eck" / "Di_Eck_0003.png", 98, "I;16")
    good = (root / "Bob_Ray" / "Bob_Ray_0001.jpg").read_bytes()
    (root / "Bob_Ray" / "Bob_Ray_0004.jpg").write_bytes(good[:len(good) // 2])  # truncated
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t2\n"
                     "Ann_Lee\t1\t2\nBob_Ray\t1\t3\nAnn_Lee\t1\tBob_Ray\t2\nAnn_Lee\t3\tBob_Ray\t1\n"
                     "Ann_Lee\t2\t3\nBob_Ray\t1\t9\nthis line is broken\nAnn_Lee\t2\tBob_Ray\t4\n")
    return root, pairs


# Data -------------------------------------------------------------------------------------------
def test_identity_folder_reads_every_image_kind_and_lists_the_bad_one(lfw_tree):
    root, _ = lfw_tree
    faces = ids.load_identity_folder(root, 16)
    assert faces.names == ["Ann_Lee", "Bob_Ray", "Cy_Dee", "Di_Eck", "Ed_Fox", "Flo_Gee"]
    assert faces.images.shape == (len(faces), 16, 16, 3) and faces.images.dtype == np.uint8
    assert len(faces) == 17 and [s["path"] for s in faces.skipped] == [str(root / "Bob_Ray" / "Bob_Ray_0004.jpg")]
    assert "not a readable image" in faces.skipped[0]["reason"]
    sixteen = faces.images[faces.paths.index(str(root / "Di_Eck" / "Di_Eck_0003.png"))]
    assert 100 < sixteen.mean() < 160  # scaled to 8 bits, not clipped to white
    with pytest.raises(ValueError, match="Bob_Ray_0004.jpg: not a readable image"):
        ids.read_face(root / "Bob_Ray" / "Bob_Ray_0004.jpg", 16)
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        ids.read_face(root / "nowhere.jpg", 16)


def test_lfw_pairs_keep_folds_and_count_malformed_and_missing_lines(lfw_tree):
    root, pairs_file = lfw_tree
    listed, skipped = ids.parse_lfw_pairs(pairs_file, root)
    assert [(s, f) for _, _, s, f in listed] == [(1, 0), (1, 0), (0, 0), (0, 0), (1, 1), (0, 1)]
    reasons = {s["line"]: s["reason"] for s in skipped}
    assert set(reasons) == {7, 8}
    assert "missing file" in reasons[7] and "Bob_Ray_0009.jpg" in reasons[7]
    assert "malformed line" in reasons[8]
    faces = ids.load_identity_folder(root, 16)
    dropped = []
    pairs = ids.pairs_from_paths(faces, listed, dropped)  # line 9 names the truncated Bob_Ray_0004
    assert len(pairs) == 5 and "Bob_Ray_0004.jpg" in dropped[0]["path"]
    bad = root.parent / "bad_pairs.txt"
    bad.write_text("ten\tpairs\n")
    with pytest.raises(ValueError, match="line 1 should be"):
        ids.parse_lfw_pairs(bad, root)


def test_lfw_pairs_name_the_evaluation_people_and_a_truncated_file_drops_its_pair(lfw_tree):
    from tasks.faces.config import FacesConfig
    from tasks.faces.data import load_splits

    root, pairs_file = lfw_tree
    cfg = FacesConfig()
    cfg.data.source, cfg.data.path, cfg.data.pairs, cfg.data.image_size = "folder", str(root), str(pairs_file), 16
    splits = load_splits(cfg, root)
    names = splits.faces.names
    assert sorted(names[i] for i in splits.identities["eval"]) == ["Ann_Lee", "Bob_Ray"]
    assert not set(splits.identities["eval"]) & set(splits.identities["train"])
    assert len(splits.eval_pairs) == 5 and splits.eval_pairs.fold.tolist() == [0, 0, 0, 0, 1]
    assert any("Bob_Ray_0004" in s["path"] for s in splits.skipped)


def test_identity_splits_and_pairs_are_seeded_disjoint_and_complete():
    faces = ids.Faces(np.zeros((24, 4, 4, 3), np.uint8), np.repeat(np.arange(8), 3).astype(np.int32),
                      [f"p{i}" for i in range(8)], [f"f{i}" for i in range(24)])
    faces.labels[21:23] = 6  # p6 has five images, p7 one
    groups = ids.split_identities(faces.identities(), {"eval": 3, "val": 2, "train": -1}, seed=4)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(8))
    again = ids.split_identities(faces.identities(), {"eval": 3, "val": 2, "train": -1}, seed=4)
    assert all(np.array_equal(groups[k], again[k]) for k in groups)
    pairs = ids.all_pairs(faces, [0, 6, 7], seed=1, folds=3)
    assert int(pairs.same.sum()) == 3 + 10 and int((1 - pairs.same).sum()) == 13
    assert all(faces.labels[a] == faces.labels[b] for a, b, s in zip(pairs.first, pairs.second, pairs.same) if s)
    assert all(faces.labels[a] != faces.labels[b] for a, b, s in zip(pairs.first, pairs.second, pairs.same) if not s)
    assert [s["path"] for s in pairs.skipped] == ["p7"]
    assert np.bincount(pairs.fold[pairs.same == 1]).tolist() == [5, 4, 4]
    again = ids.all_pairs(faces, [0, 6, 7], seed=1, folds=3)
    assert np.array_equal(pairs.first, again.first) and np.array_equal(pairs.fold, again.fold)
    with pytest.raises(ValueError, match="too few identities"):
        ids.split_identities(np.arange(3), {"eval": 3, "train": -1}, seed=0)


def test_identity_batches_are_p_by_k_seeded_and_resume_at_any_step():
    labels = np.repeat(np.arange(6), 4)
    labels[0] = 9  # a person with one image: left out
    images = np.random.default_rng(0).integers(0, 255, (24, 8, 8, 3)).astype(np.uint8)
    batches = IdentityBatches(images, labels, 3, 4, seed=5, augment=Augment(True, 0.25, 0.1, 0.2))
    assert batches.left_out == [9] and batches.batch_size == 12
    x, y = batches(7)
    assert x.shape == (12, 8, 8, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert sorted(np.bincount(y)[np.bincount(y) > 0].tolist()) == [4, 4, 4] and 9 not in y
    again = IdentityBatches(images, labels, 3, 4, seed=5, augment=Augment(True, 0.25, 0.1, 0.2))
    np.testing.assert_array_equal(again(7)[0], x)  # a pure function of (seed, step)
    assert not np.array_equal(batches(8)[0], x)
    plain = IdentityBatches(images, labels, 3, 4, seed=5)
    assert set(np.unique(plain(7)[0])) <= set(np.unique(images))
    with pytest.raises(ValueError, match="at least two identities"):
        IdentityBatches(images[:3], np.arange(3), 2, 2, seed=0)


def test_rotation_turns_about_the_centre_and_is_seeded_and_resumable():
    from pipelines.identity_batches import rotate

    image = np.random.default_rng(0).uniform(0, 255, (9, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(rotate(image, np.pi / 2), np.rot90(image, -1), atol=1e-3)  # clockwise on screen
    np.testing.assert_allclose(rotate(image, 0.0), image, atol=1e-4)
    turned = rotate(image, np.deg2rad(8))
    assert turned.dtype == np.float32 and not np.allclose(turned, image)
    np.testing.assert_allclose(turned[4, 4], image[4, 4], atol=1e-3)  # the centre stays
    assert image.min() <= turned.min() and turned.max() <= image.max()  # bilinear: no new extremes

    labels = np.repeat(np.arange(4), 3)
    images = np.random.default_rng(1).integers(0, 255, (12, 8, 8, 3)).astype(np.uint8)
    only_rotation = Augment(flip=False, rotation=15.0)
    batches = IdentityBatches(images, labels, 2, 3, seed=3, augment=only_rotation)
    again = IdentityBatches(images, labels, 2, 3, seed=3, augment=only_rotation)
    np.testing.assert_array_equal(batches(5)[0], again(5)[0])  # a pure function of (seed, step): resumable
    plain = IdentityBatches(images, labels, 2, 3, seed=3)
    assert not np.allclose(batches(5)[0], plain(5)[0])
    np.testing.assert_array_equal(batches(5)[1], plain(5)[1])  # the same people and images, turned
    # without rotation the other augmentations draw exactly what they drew before it existed
    legacy = Augment(True, 0.25, 0.1, 0.2)
    np.testing.assert_array_equal(legacy(images[:4], np.random.default_rng(7)),
                                  Augment(True, 0.25, 0.1, 0.2, rotation=0.0)(images[:4], np.random.default_rng(7)))


# Metrics ------------------------------------------------------------------------------------------
def test_threshold_kfold_roc_and_identification_on_hand_made_distances():
    distances = np.asarray([0.1, 0.2, 0.3, 0.9, 0.5, 0.8, 1.0, 1.2])
    same = np.asarray([1, 1, 1, 1, 0, 0, 0, 0])
    threshold = V.best_threshold(distances, same)
    assert 0.3 < threshold < 0.5 and V.accuracy_at(distances, same, threshold) == 7 / 8
    folds = V.kfold_accuracy(distances, same, np.asarray([0, 1, 0, 1, 0, 1, 0, 1]))
    assert len(folds["per_fold"]) == 2 and 0 <= folds["mean"] <= 1
    result = V.roc(distances, same)
    assert result["auc"] == pytest.approx(14 / 16)  # 14 of the 16 (same, different) pairs ordered right
    assert 0.0 < result["eer"] < 0.5
    assert result["tar_at_far"]["0.01"]["tar"] is None and "needs >= 100" in result["tar_at_far"]["0.01"]["note"]
    many = V.roc(np.r_[np.zeros(10), np.ones(1000)], np.r_[np.ones(10), np.zeros(1000)])
    assert many["tar_at_far"]["0.001"]["tar"] == 1.0 and many["auc"] == 1.0 and many["eer"] == 0.0
    matrix = np.asarray([[0.1, 0.9, 0.8], [0.7, 0.6, 0.2], [0.3, 0.5, 0.9]])  # probes x gallery
    ident = V.identification(matrix, [0, 1, 2], [0, 1, 2], threshold=0.4)
    assert ident["rank1"] == pytest.approx(1 / 3) and ident["rank5"] == 1.0
    # own person left out: probe 0's best other is 0.8 (rejected), probe 1's 0.2, probe 2's 0.3
    assert ident["open_set_rejection"] == pytest.approx(1 / 3)
    gallery, probes = V.gallery_split(np.asarray([0, 0, 1, 1, 1, 2]), seed=0)
    assert len(gallery) == 3 and len(probes) == 3 and not set(gallery) & set(probes)
    scores = V.pair_scores(distances, same)  # the per-epoch val_auc / val_accuracy
    assert scores["auc"] == pytest.approx(result["auc"]) and scores["accuracy"] == 7 / 8
    assert scores["threshold"] == threshold
    with pytest.raises(ValueError, match="same and different"):
        V.pair_scores(distances[:4], same[:4])


def test_eigenfaces_separate_two_kinds_of_image():
    rng = np.random.default_rng(0)
    left, right = np.zeros((8, 8, 3)), np.zeros((8, 8, 3))
    left[:, :4], right[:, 4:] = 200, 200
    images = np.stack([base + rng.normal(0, 5, base.shape) for base in [left] * 5 + [right] * 5])
    pca = V.Eigenfaces(3).fit(images)
    vectors = pca.transform(images)
    distances = V.cosine_distances_of(vectors, np.asarray([0, 0]), np.asarray([1, 6]))
    assert distances[0] < 0.2 < 1.5 < distances[1]


def test_lbp_histograms_are_uniform_codes_per_cell_and_tell_textures_apart():
    lbp = V.LocalBinaryPatterns(radius=1, cells=2)
    assert lbp.bin_of.max() == 58 and len(set(lbp.bin_of.tolist())) == 59  # 58 uniform codes + the rest
    flat = np.full((1, 10, 10), 100.0)
    assert np.all(lbp.codes(flat) == lbp.bin_of[255])  # every neighbour >= the centre
    rng = np.random.default_rng(0)
    stripes = np.tile(np.repeat([0.0, 200.0], 2), 5)[None, :20].repeat(20, 0)  # vertical stripes
    images = np.stack([stripes + rng.normal(0, 3, stripes.shape) for _ in range(3)]
                      + [stripes.T + rng.normal(0, 3, stripes.shape) for _ in range(3)])
    features = lbp.transform(images)
    assert features.shape == (6, 4 * 59)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-9)
    distances = V.distances_of(features, np.asarray([0, 0]), np.asarray([1, 4]))
    assert distances[0] < distances[1]
    with pytest.raises(ValueError, match="needs images over"):
        V.LocalBinaryPatterns(radius=2, cells=8).transform(np.zeros((1, 10, 10)))


def test_local_ternary_patterns_ignore_small_differences_and_keep_edges():
    rng = np.random.default_rng(1)
    noisy = 100.0 + rng.integers(-2, 3, (1, 20, 20)).astype(np.float64)  # +-2 grey levels around 100
    plain, ternary = V.LocalBinaryPatterns(1, 2), V.LocalBinaryPatterns(1, 2, threshold=5)
    assert len(np.unique(plain.codes(noisy))) > 5  # LBP flips on every grey level
    codes = ternary.codes(noisy)
    assert codes.shape == (1, 18, 18, 2) and np.all(codes == ternary.bin_of[0])  # nothing 5 brighter or darker
    edge = np.zeros((1, 20, 20))
    edge[:, :, 10:] = 200.0  # dark left half, bright right half
    codes = ternary.codes(edge)
    assert codes[0, 5, 8, 0] != ternary.bin_of[0] and codes[0, 5, 8, 1] == ternary.bin_of[0]  # left: brighter ones
    assert codes[0, 5, 9, 1] != ternary.bin_of[0] and codes[0, 5, 9, 0] == ternary.bin_of[0]  # right: darker ones
    rgb = np.repeat(noisy[..., None], 3, axis=-1)  # RGB: the threshold is on the channels' mean
    np.testing.assert_array_equal(ternary.codes(rgb), ternary.codes(noisy))
    features = ternary.transform(noisy)
    assert features.shape == (1, 2 * 4 * 59) == (1, ternary.size)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, rtol=1e-9)
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        V.LocalBinaryPatterns(1, 2, threshold=-1)


# Losses -----------------------------------------------------------------------------------------
def _reference_losses(labels, vectors, margin):
    d = np.maximum(2 - 2 * vectors @ vectors.T, 0)
    hard, semi = [], []
    for a in range(len(labels)):
        pos = [p for p in range(len(labels)) if labels[p] == labels[a] and p != a]
        neg = [n for n in range(len(labels)) if labels[n] != labels[a]]
        hard.append(max(0, max(d[a, pos]) - min(d[a, neg]) + margin))
        terms = []
        for p in pos:
            farther = [d[a, n] for n in neg if d[a, n] > d[a, p]]
            chosen = min(farther) if farther else max(d[a, neg])
            terms.append(max(0, d[a, p] - chosen + margin))
        semi.append(np.mean(terms))
    return np.asarray(hard), np.asarray(semi), d


@pytest.mark.backend
def test_losses_match_plain_numpy():
    import keras

    from tasks.faces.models import ArcFaceLoss, ContrastiveLoss, TripletLoss

    rng = np.random.default_rng(1)
    labels = np.asarray([0, 0, 1, 1, 2, 2, 2], np.int32)
    vectors = rng.normal(size=(7, 5)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hard, semi, d = _reference_losses(labels, vectors, 0.3)
    reduction = {"reduction": None}
    got_hard = keras.ops.convert_to_numpy(TripletLoss(0.3, "hard", **reduction)(labels, vectors))
    got_semi = keras.ops.convert_to_numpy(TripletLoss(0.3, "semihard", **reduction)(labels, vectors))
    np.testing.assert_allclose(got_hard, hard, atol=1e-5)
    np.testing.assert_allclose(got_semi, semi, atol=1e-5)
    same = labels[:, None] == labels[None]
    dist = np.sqrt(np.maximum(d, 1e-12))
    pair = np.where(same, d, np.maximum(0, 1.0 - dist) ** 2)
    np.fill_diagonal(pair, 0)
    expected = pair.sum(1) / (len(labels) - 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ContrastiveLoss(1.0, **reduction)(labels, vectors)),
                               expected, atol=1e-5)
    cosines = np.asarray([[0.9, 0.1], [0.2, -0.3]], np.float32)
    theta = np.arccos(cosines[np.arange(2), [0, 1]])
    logits = 10 * cosines.copy()
    logits[np.arange(2), [0, 1]] = 10 * np.cos(theta + 0.4)
    reference = -np.log(np.exp(logits[np.arange(2), [0, 1]]) / np.exp(logits).sum(1))
    got = keras.ops.convert_to_numpy(ArcFaceLoss(10, 0.4, **reduction)(np.asarray([0, 1]), cosines))
    np.testing.assert_allclose(got, reference, rtol=1e-4)


@pytest.mark.slow  # a second model compile (~3 min on loaded cores under JAX); the losses are checked above
@pytest.mark.backend
def test_a_triplet_loss_trains_the_embedding_model_and_it_reloads_equal(tmp_path):
    import keras

    from tasks.faces import models
    from tasks.faces.config import FacesConfig

    cfg = FacesConfig()
    cfg.model.loss = "triplet_hard"  # ArcFace trains in the smoke run; every loss is checked against numpy
    embedding = models.build_embedding_model("resnet20", 16, 8, width_multiplier=0.25)
    model = models.training_model(embedding, "triplet_hard", num_classes=3)
    assert model is embedding  # no head: the embedding model is what fit() trains
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=models.make_loss(cfg), jit_compile=False)
    x = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    y = np.asarray([0, 0, 1, 1, 2, 2], np.int32)
    before = keras.ops.convert_to_numpy(embedding(x))
    history = model.fit(x, y, batch_size=6, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = models.embed(embedding, x, flip_average=True)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(before, keras.ops.convert_to_numpy(embedding(x)))
    path = tmp_path / "model.keras"
    embedding.save(path)
    reloaded = models.load_embedding_model(path)
    np.testing.assert_allclose(models.embed(reloaded, x), models.embed(embedding, x), atol=1e-5)


@pytest.mark.backend
def test_grid_embedding_shares_the_trained_layers_and_keeps_where_features_fire():
    from tasks.faces import models
    from tasks.faces.config import FacesConfig

    model = models.build_embedding_model("resnet20", 16, 8, width_multiplier=0.25, grid=2)
    grid = models.grid_embedding_model(model)
    assert tuple(grid.output.shape) == (None, 2 * 2 * 16)  # resnet20 x0.25 ends in 16 channels at 4x4
    assert {id(w) for w in grid.weights} <= {id(w) for w in model.weights}  # no weights of its own
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    vectors = models.embed(grid, x, flip_average=True)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # a mirrored face lights the same features in mirrored cells: the grid tells them apart
    plain, mirrored = models.embed(grid, x), models.embed(grid, np.ascontiguousarray(x[:, :, ::-1]))
    assert not np.allclose(plain, mirrored, atol=1e-3)
    with pytest.raises(ValueError, match="model.grid=3 does not divide resnet20's 4x4 feature map"):
        models.build_embedding_model("resnet20", 16, 8, width_multiplier=0.25, grid=3)
    with pytest.raises(ValueError, match="needs model.grid > 0"):
        models.grid_embedding_model(models.build_embedding_model("resnet20", 16, 8, width_multiplier=0.25))
    cfg = FacesConfig()
    cfg.model.embedding = "grid"
    with pytest.raises(ConfigError, match="model.embedding=grid needs model.grid >= 1"):
        cfg.model.validate()
    cfg = FacesConfig()
    cfg.model.lbp_radii = (1, 2)
    with pytest.raises(ConfigError, match="model.lbp_radii needs model.whitening > 0"):
        cfg.model.validate()
    cfg.model.whitening, cfg.model.lbp_radii = 0.1, (2, 2)
    with pytest.raises(ConfigError, match="model.lbp_radii must be distinct radii >= 1"):
        cfg.model.validate()
    cfg.model.lbp_radii, cfg.data.image_size = (14,), 32
    with pytest.raises(ConfigError, match="need data.image_size over 32 px"):
        cfg.validate()
    cfg.model.lbp_radii, cfg.model.lbp_cells = (14,), 2  # 2 cells: 14 px radii fit in 32 px
    cfg.validate()
    cfg.model.lbp_cells = -1
    with pytest.raises(ConfigError, match="model.lbp_cells must be >= 1, or 0"):
        cfg.model.validate()
    cfg.model.lbp_cells, cfg.model.lbp_threshold = 0, 255
    with pytest.raises(ConfigError, match=r"model.lbp_threshold must be in \[0, 255\) grey levels"):
        cfg.model.validate()
    cfg.model.lbp_radii, cfg.model.lbp_threshold = (), 0.0
    cfg.data.image_size, cfg.model.cnn_size = 64, 48
    with pytest.raises(ConfigError, match=r"model.cnn_size \(48\) must divide data.image_size \(64\)"):
        cfg.validate()
    shrunk = models.build_embedding_model("resnet20", 32, 8, width_multiplier=0.25, grid=2, cnn_size=16)
    assert tuple(shrunk.get_layer("cnn_shrink").output.shape) == (None, 16, 16, 3)


@pytest.mark.backend
def test_whitening_evens_out_the_training_embeddings_and_the_layer_matches_numpy(tmp_path):
    import keras

    from tasks.faces import models, whitening

    rng = np.random.default_rng(0)
    scales = np.array([5.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    vectors = rng.normal(size=(400, 6)) * scales + 3.0
    fitted = whitening.fit(vectors, shrinkage=1e-9)
    white = (vectors - fitted["mean"]) @ fitted["basis"] * fitted["scales"]
    np.testing.assert_allclose(white.T @ white / len(white), np.eye(6), atol=1e-4)  # unit covariance
    shrunk = whitening.fit(vectors, shrinkage=100.0)  # large shrinkage: close to a plain rescaling
    assert shrunk["scales"].max() / shrunk["scales"].min() < 1.05 < fitted["scales"].max() / fitted["scales"].min()
    with pytest.raises(ValueError, match="at least 2 training images"):
        whitening.fit(vectors[:1], 0.1)
    # fewer images than dimensions: the kept directions span the data; distances equal the full whitening's
    wide = rng.normal(size=(12, 40)) * rng.uniform(0.1, 3.0, 40)
    low_rank = whitening.fit(wide, 0.1)
    assert low_rank["basis"].shape == (40, 11)
    centred = wide - wide.mean(0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(wide))
    eigenvalues = np.maximum(eigenvalues, 0)
    probe = rng.normal(size=(6, 40))
    full = (probe - wide.mean(0)) @ eigenvectors / np.sqrt(eigenvalues + 0.1 * eigenvalues.mean())
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    ours = whitening.apply(probe, low_rank)
    first, second = np.triu_indices(6, 1)
    np.testing.assert_allclose(V.distances_of(ours, first, second), V.distances_of(full, first, second), atol=1e-5)

    model = models.grid_embedding_model(models.build_embedding_model("resnet20", 16, 8, width_multiplier=0.25, grid=2))
    x = rng.uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    plain = models.embed(model, x)
    other = rng.normal(size=(5, 24)).astype(np.float32)
    fits = [whitening.fit(np.concatenate([plain, -plain + 0.1]), 0.1), whitening.fit(np.abs(other), 0.1)]
    extra = keras.layers.Lambda(lambda image: keras.ops.abs(keras.ops.reshape(image, (-1, 768))[:, :24]))
    whitened = whitening.whitened_model(model.input, [model.output, extra(model.input)], fits, ["a", "b"])
    mirrored = np.ascontiguousarray(x[:, :, ::-1])
    expected = whitening.combined([[plain, models.embed(model, mirrored)],
                                   [np.abs(x.reshape(5, -1)[:, :24]), np.abs(mirrored.reshape(5, -1)[:, :24])]], fits)
    np.testing.assert_allclose(models.embed(whitened, x, flip_average=True), expected, atol=1e-5)
    single = whitening.whitened_model(model.input, [model.output], fits[:1], ["network"])
    single.save(tmp_path / "white.keras")
    reloaded = models.load_embedding_model(tmp_path / "white.keras")
    np.testing.assert_allclose(models.embed(reloaded, x), whitening.apply(plain, fits[0]), atol=1e-5)
    assert not reloaded.get_layer("network_whitening").trainable


def test_cross_fitted_whitening_scores_each_group_under_a_fit_without_it():
    from tasks.faces import whitening

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(8), 3)  # 8 people x 3 images, all training
    train = np.arange(len(labels))
    blocks = [[whitening.averaged([rng.normal(size=(24, 5))]) for _ in range(2)],
              [whitening.averaged([rng.normal(size=(24, 3))]) for _ in range(2)]]  # 2 blocks x 2 views
    names = [f"p{i}" for i in range(8)]
    pairs = ids.all_pairs(ids.Faces(np.zeros((24, 2, 2, 3), np.uint8), labels, names, names * 3), np.arange(8), 0, 1)
    distances, same, groups = whitening.cross_fitted_distances(blocks, labels, train, pairs, 0.1, seed=0)
    assert groups == 4  # 8 people // 2
    # every same-person pair lies within a group; of the different-person pairs, those across groups are left out
    assert same.sum() == pairs.same.sum() == 8 * 3 and 0 < (1 - same).sum() < (1 - pairs.same).sum()
    assert np.all((distances >= 0) & (distances <= 2 + 1e-6)) and len(distances) == len(same)
    again, _, _ = whitening.cross_fitted_distances(blocks, labels, train, pairs, 0.1, seed=0)
    np.testing.assert_array_equal(distances, again)
    with pytest.raises(ValueError, match="at least 4 training people"):
        whitening.cross_fitted_distances(blocks, labels, train[:9], pairs, 0.1, seed=0)
    # pairs re-indexed to a subset of the images (the fit's), the others left out; chunked features
    subset = np.array([3, 4, 5, 9])
    among = whitening.pairs_among(pairs, subset)
    inside = np.isin(pairs.first, subset) & np.isin(pairs.second, subset)
    assert len(among) == inside.sum() and among.same.sum() == 3  # person 1's images 3, 4, 5: three pairs
    assert sorted(zip(subset[among.first].tolist(), subset[among.second].tolist())) == sorted(
        zip(pairs.first[inside].tolist(), pairs.second[inside].tolist()))
    chunked = whitening.in_chunks(lambda x: x * 2.0, np.arange(10.0).reshape(5, 2), size=2)
    np.testing.assert_array_equal(chunked, np.arange(10.0).reshape(5, 2) * 2)


@pytest.mark.backend
def test_the_lbp_layer_computes_what_its_numpy_twin_does(tmp_path):
    import keras

    from tasks.faces.lbp import LocalBinaryPatternLayer

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 40, 40, 3)).astype(np.float32)
    images[0, 10:30, 10:30] = 128  # flat: neighbours equal to the centre (>= is true)
    images[1] = images[1].mean(axis=-1, keepdims=True).round()  # grey
    images[2, :20] = 100 + rng.integers(-12, 13, (20, 40, 1))  # grey differences about the threshold
    # 6 and 7 cells do not divide the 36 / 34 code rows evenly; thresholds: local ternary patterns
    for radius, cells, threshold in ((1, 4, 0), (2, 8, 0), (2, 6, 0), (2, 8, 10), (3, 7, 4.5)):
        layer = LocalBinaryPatternLayer(radius, cells, threshold)
        expected = V.LocalBinaryPatterns(radius, cells, threshold).transform(images)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(images)), expected, atol=1e-6)
    model = keras.Sequential([keras.Input((40, 40, 3)), LocalBinaryPatternLayer(2, 8, 10)])
    model.save(tmp_path / "lbp.keras")
    reloaded = keras.models.load_model(tmp_path / "lbp.keras")
    expected = V.LocalBinaryPatterns(2, 8, 10).transform(images)
    assert expected.shape == (3, 2 * 8 * 8 * 59)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(images)), expected, atol=1e-6)
    with pytest.raises(ValueError, match="needs images over 12 pixels a side; these are 10x10"):
        LocalBinaryPatternLayer(2, 8)(images[:, :10, :10])


# The task end to end -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_root):
    workdir = tmp_path_factory.mktemp("faces") / "run"
    assert run_cli("faces", "run", workdir, "--preset", "smoke", data_root=data_root) == 0
    return workdir


@pytest.mark.backend
def test_run_writes_every_artifact_and_the_baseline(smoke_run):
    for name in ("config.json", "model.keras", "threshold.json", "training.json", "pairs/eval_pairs.json",
                 "pairs/val_pairs.json", "pairs/identities.json", "evaluation/results.json",
                 "evaluation/scores.npz", "export/faces.json", "report/report.json", "report/index.html",
                 "report/roc.png", "report/distances.png", "report/hardest_pairs.png"):
        assert (smoke_run / name).exists(), name
    identities = json.loads((smoke_run / "pairs/identities.json").read_text())
    assert len(identities["eval"]) == 6 and not set(identities["eval"]) & set(identities["train"])
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    ours, pca = results["ours"], results["eigenfaces"]
    assert results["data"]["eval_pairs_same"] == 6 * 45 == results["data"]["eval_pairs_different"]
    model = json.loads((smoke_run / "config.json").read_text())["model"]
    assert model["loss"] == "arcface"  # its head is dropped: model.keras maps images to unit embeddings
    import keras

    saved = keras.models.load_model(smoke_run / "model.keras", compile=False)
    # the whitened grid embedding (4 x 4 cells x 32 channels) beside whitened local ternary patterns at 3 radii
    assert tuple(saved.output.shape) == (None, 4 * 4 * 32 + 3 * 2 * 7 * 7 * 59)  # ternary patterns: 2 codes, 7x7 cells
    assert not any("arcface" in layer.name or layer.name == "projection" for layer in saved.layers)
    threshold = json.loads((smoke_run / "threshold.json").read_text())  # whitened, threshold cross-fitted
    assert saved.get_layer("network_whitening").get_weights()[1].shape == (512, 139)  # 140 images: rank 139
    assert saved.get_layer("lbp_r3_whitening").get_weights()[1].shape == (5782, 139)
    assert threshold["whitening"] == {"shrinkage": 0.1, "fitted_on_images": 140, "views": 2,
                                      "blocks": {"network": 512, "lbp_r1": 5782, "lbp_r2": 5782, "lbp_r3": 5782}}
    assert "5 groups of the 14 training people" in threshold["chosen_on"] and threshold["validation_pairs"] > 0
    assert len(ours["kfold_accuracy"]["per_fold"]) == 10 and 0.5 < pca["auc"] <= 1
    assert 0.5 < results["lbp"]["auc"] <= 1 and results["lbp"]["identification"]["probes"] == 54
    assert results["lbp"]["settings"] == {"radii": [1, 2, 3], "cells": 7, "threshold": 10.0, "whitening": 0.1,
                                          "flip_average": True}
    assert ours["tar_at_far"]["0.001"]["tar"] is None  # 270 negatives cannot resolve 1e-3
    assert ours["identification"]["gallery"] == 6 and ours["identification"]["probes"] == 54
    report = json.loads((smoke_run / "report/report.json").read_text())
    assert "eigenfaces accuracy" in report["metrics"] and "rank-1" in report["metrics"]
    assert report["metrics"]["LBP baseline accuracy"].startswith(f"{results['lbp']['kfold_accuracy']['mean']:.2%}")
    assert results["auc"] == ours["auc"]  # the test twin of val_auc (Task.tune_test_key)
    from shared.training import read_history

    history = read_history(smoke_run / "logs/history.csv")  # every epoch: the validation pairs' metrics
    assert len(history["val_auc"]) == 2 and all(0.0 <= v <= 1.0 for v in history["val_auc"])
    assert all(0.5 <= v <= 1.0 for v in history["val_accuracy"])
    training = json.loads((smoke_run / "training.json").read_text())
    assert training["val_auc"] == pytest.approx(history["val_auc"]) and training["kept_epoch"] is None


@pytest.mark.backend
def test_saved_model_takes_any_size_grey_or_rgb_and_carries_the_threshold(smoke_run):
    tf = pytest.importorskip("tensorflow")
    threshold = json.loads((smoke_run / "threshold.json").read_text())["threshold"]
    loaded = tf.saved_model.load(str(smoke_run / "export/saved_model"))
    grey = np.random.default_rng(0).integers(0, 255, (2, 50, 40, 1)).astype(np.uint8)
    served = loaded.signatures["serving_default"](images=grey)["embeddings"].numpy()
    rgb = loaded.signatures["serving_default"](images=np.repeat(grey, 3, -1))["embeddings"].numpy()
    assert served.shape == (2, 512 + 3 * 5782)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(served, rgb, atol=1e-6)
    assert float(loaded.signatures["metadata"]()["threshold"]) == pytest.approx(threshold)
    empty = loaded.signatures["serving_default"](images=np.zeros((0, 9, 9, 3), np.uint8))["embeddings"]
    assert tuple(empty.shape) == (0, 512 + 3 * 5782)
    assert json.loads((smoke_run / "export/faces.json").read_text())["check_max_abs_difference"] < 1e-3


def _olivetti_pngs(folder, data_root, people=(0, 1, 2), per_person=3):
    from pipelines.datasets.olivetti import load_olivetti_arrays

    images, _ = load_olivetti_arrays(data_root)
    paths = {}
    for person in people:
        for k in range(per_person):
            path = folder / f"person_{person:02d}" / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[person * 10 + k][..., 0]).save(path)
            paths.setdefault(person, []).append(path)
    return paths


@pytest.mark.backend
def test_verify_enroll_identify_and_their_bad_inputs(smoke_run, data_root, tmp_path, capsys):
    paths = _olivetti_pngs(tmp_path / "people", data_root)
    a, b = str(paths[0][0]), str(paths[0][1])
    assert run_cli("faces", "verify", smoke_run, a, a, "--out", str(tmp_path / "out")) == 0
    verdict = json.loads((tmp_path / "out/verify.json").read_text())
    assert verdict["distance"] < 1e-5 and verdict["same"] and verdict["threshold_source"] != "--threshold"
    assert run_cli("faces", "verify", smoke_run, a, b, "--threshold", "0") == 0
    assert "different people (threshold 0.0000, --threshold)" in capsys.readouterr().out
    assert main(["faces", "verify", a, str(tmp_path / "missing.png"), "--workdir", str(smoke_run)]) == 2
    assert "missing.png" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    assert main(["faces", "verify", a, str(broken), "--workdir", str(smoke_run)]) == 2
    assert "broken.png: not a readable image" in capsys.readouterr().err

    gallery = tmp_path / "gallery.npz"
    (tmp_path / "people" / "person_02" / "bad.jpg").write_bytes(b"not a jpeg")
    assert run_cli("faces", "enroll", smoke_run, str(tmp_path / "people"), "--gallery", str(gallery)) == 0
    out = capsys.readouterr().out
    assert "enrolled 9 images (9 new) of 3 people" in out and "1 skipped" in out and "bad.jpg" in out
    trained = sorted({"person_00", "person_01", "person_02"}
                     & set(json.loads((smoke_run / "pairs/identities.json").read_text())["train"]))
    assert trained  # the smoke preset trains on 14 of the first 20 people
    assert f"warning: {len(trained)} of these people were training people of this run ({', '.join(trained)})" in out
    _olivetti_pngs(tmp_path / "more", data_root, people=(0, 3), per_person=1)
    assert run_cli("faces", "enroll", smoke_run, str(tmp_path / "more"), "--gallery", str(gallery)) == 0
    assert "now 4 people, 11 images" in capsys.readouterr().out  # adds, never loses
    assert run_cli("faces", "enroll", smoke_run, str(tmp_path / "more"), "--gallery", str(gallery)) == 0
    assert "now 4 people, 11 images" in capsys.readouterr().out  # the same images are not doubled
    assert run_cli("faces", "identify", smoke_run, a, "--gallery", str(gallery), "--out", str(tmp_path / "id")) == 0
    found = json.loads((tmp_path / "id/identify.json").read_text())[0]
    assert found["match"] == "person_00" and found["distance"] < 1e-5
    assert run_cli("faces", "identify", smoke_run, a, "--gallery", str(gallery), "--threshold", "-1") == 0
    assert ": unknown (nearest person_00" in capsys.readouterr().out

    before = gallery.read_bytes()
    gallery.write_bytes(before[:100])
    assert main(["faces", "identify", a, "--gallery", str(gallery), "--workdir", str(smoke_run)]) == 2
    assert "gallery.npz is not a readable gallery" in capsys.readouterr().err
    assert main(["faces", "enroll", str(tmp_path / "more"), "--gallery", str(gallery),
                 "--workdir", str(smoke_run)]) == 2  # refuses to overwrite a damaged gallery
    assert gallery.read_bytes() == before[:100]
    assert main(["faces", "enroll", str(tmp_path / "people"), "--workdir", str(smoke_run)]) == 2
    assert "--gallery FILE is needed" in capsys.readouterr().err


def test_every_preset_is_valid_documented_and_round_trips(tmp_path):
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.faces.config import PRESETS, FacesConfig

    assert {"smoke", "demo", "olivetti"} <= set(PRESETS)
    for name, factory in PRESETS.items():
        cfg = factory()
        config_lib.validate(cfg)
        doc = factory.__doc__ or ""
        assert "Command:" in doc and "Expect" in doc, f"preset {name} lacks command/expectation"
        assert config_lib.load(FacesConfig, config_lib.save(cfg, tmp_path / f"{name}.json")) == cfg
    with pytest.raises(ConfigError, match="data.path"):
        config_lib.apply_overrides(FacesConfig(), ["data.source=folder"])
    with pytest.raises(ConfigError, match="model.loss"):
        config_lib.apply_overrides(FacesConfig(), ["model.loss=softmax"])
    with pytest.raises(ConfigError, match="batch.rotation"):
        config_lib.apply_overrides(FacesConfig(), ["batch.rotation=90"])
    with pytest.raises(ConfigError, match="eval.keep_best"):
        config_lib.apply_overrides(FacesConfig(), ["eval.keep_best=true", "eval.epoch_every=0"])


@pytest.mark.slow
@pytest.mark.backend
def test_resume_after_a_kill_is_exact(tmp_path, monkeypatch, data_root):
    from shared.testing import train_killed_then_resumed
    from tasks.faces import models

    train_killed_then_resumed("faces", tmp_path, ("--preset", "smoke"), monkeypatch, data_root=data_root)
    x = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype(np.float32)  # the smoke preset: 64 px
    straight = models.embed(models.load_embedding_model(tmp_path / "straight/model.keras"), x)
    resumed = models.embed(models.load_embedding_model(tmp_path / "killed/model.keras"), x)
    np.testing.assert_allclose(straight, resumed, atol=1e-5)
    assert json.loads((tmp_path / "killed/training.json").read_text())["resumed_from_step"] > 0


def test_keep_best_saves_the_epoch_with_the_best_val_auc(tmp_path, data_root):
    from shared.training import read_history

    workdir = tmp_path / "run"
    assert run_cli("faces", "train", workdir, "--preset", "smoke", "--set", "eval.keep_best=true",
                   "--set", "data.val_identities=3", data_root=data_root) == 0
    values = read_history(workdir / "logs" / "history.csv")["val_auc"]
    kept = json.loads((workdir / "training.json").read_text())["kept_epoch"]
    assert kept == 1 + max(range(len(values)), key=lambda i: (values[i], -i))  # the first best epoch
