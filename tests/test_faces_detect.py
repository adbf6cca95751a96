"""Face detection for photos that are not face crops (`data.detect_faces`, tasks/faces/detect.py):
an Olivetti face upscaled and turned inside a street photo is found, levelled and cropped by
both detectors; the numpy MTCNN matches the mtcnn package; a photo without a face is counted
and listed, never a crash; unknown detectors and missing packages are clear config errors; the
task end to end on a folder of photos (train, verify, enroll)."""

import importlib.util
import json
import math

import numpy as np
import pytest
from PIL import Image

from pipelines.datasets import identities as ids
from shared.cli import main
from shared.testing import run_cli

needs_mtcnn = pytest.mark.skipif(importlib.util.find_spec("mtcnn") is None,
                                 reason="mtcnn not installed (pip install -e '.[faces-detect]')")
needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                                  reason="opencv-python-headless<5 not installed (pip install -e '.[faces-detect]')")
BACKGROUND = "style-images/content/golden_gate.jpg"


@pytest.fixture(scope="module")
def olivetti(data_root):
    from pipelines.datasets.olivetti import load_olivetti_arrays

    return load_olivetti_arrays(data_root)[0][..., 0]


def photo(face: np.ndarray, background: Image.Image, side: int, angle: float, centre: tuple[int, int]):
    """`face` (grey) upscaled to side x side, turned `angle` degrees counter-clockwise, pasted
    centred on `centre` into `background` (a 480 x 360 copy): the RGB array."""
    face = Image.fromarray(face).convert("RGB").resize((side, side), Image.BILINEAR)
    mask = Image.new("L", (side, side), 255)
    face, mask = (im.rotate(angle, Image.BILINEAR, expand=True) for im in (face, mask))
    canvas = background.convert("RGB").resize((480, 360))
    canvas.paste(face, (centre[0] - face.width // 2, centre[1] - face.height // 2), mask)
    return np.asarray(canvas)


def correlation(a, b):
    a, b = (np.asarray(x, np.float64).mean(-1).ravel() for x in (a, b))
    return float(np.corrcoef(a, b)[0, 1])


# Haar cascades are trained on upright faces: they lose this one past ~8 degrees, MTCNN does not.
@pytest.mark.parametrize("detector, angle", [pytest.param("mtcnn", 12.0, marks=needs_mtcnn),
                                             pytest.param("opencv", 6.0, marks=needs_opencv)])
def test_the_largest_face_in_a_photo_is_found_levelled_and_cropped(detector, angle, olivetti, data_root):
    from tasks.faces.detect import FaceCropper

    background, (cx, cy) = Image.open(data_root / BACKGROUND), (290, 180)
    rgb = photo(olivetti[0], background, 150, angle, (cx, cy))
    crop = FaceCropper(detector, margin=0.0)
    box, landmarks = max(crop.find(rgb), key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1]))
    side = max(box[2] - box[0], box[3] - box[1])
    assert math.hypot((box[0] + box[2]) / 2 - cx, (box[1] + box[3]) / 2 - cy) < 0.2 * 150
    assert 0.4 * 150 < side < 1.5 * 150  # the box covers the face, not the whole photo
    if detector == "mtcnn":  # the five landmarks: eyes above the nose above the mouth
        assert landmarks[0, 1] < landmarks[2, 1] < landmarks[3, 1] and landmarks[0, 0] < landmarks[1, 0]
    out = crop(rgb, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    stats = crop.summary()
    assert stats["images"] == stats["faces"] == 1 and stats["no_face"] == 0
    if stats["not_aligned"] == 0:  # eyes found: levelled back to within a few degrees of upright
        from tasks.faces.detect import aligned_crop, eye_angle

        assert eye_angle(landmarks) == pytest.approx(-angle, abs=4.0)
        upright = crop(photo(olivetti[0], background, 150, 0.0, (cx, cy)), 64)  # the same face, not turned
        levelled, tilted = correlation(out, upright), correlation(aligned_crop(rgb, box, 0.0, 0.0, 64), upright)
        assert levelled > 0.8 and levelled > tilted + angle / 300, (levelled, tilted)
    assert detector == "opencv" or stats["not_aligned"] == 0  # MTCNN always has its landmarks


@pytest.mark.slow  # imports TensorFlow and builds the package's nets: ~20 s on 2 busy cores
@needs_mtcnn
def test_the_numpy_mtcnn_finds_what_the_mtcnn_package_finds(olivetti, data_root):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the mtcnn package runs its nets with tf.keras, which needs the TensorFlow backend")
    from mtcnn import MTCNN

    from tasks.faces.detect import MTCNNDetector

    rgb = photo(olivetti[0], Image.open(data_root / BACKGROUND), 140, -8.0, (150, 200))
    theirs = MTCNN().detect_faces(rgb)[0]
    x, y, w, h = theirs["box"]
    box, landmarks = MTCNNDetector(min_face_fraction=0)(rgb)[0]  # the package's pyramid: faces >= 20 px
    inter = max(0, min(box[2], x + w) - max(box[0], x)) * max(0, min(box[3], y + h) - max(box[1], y))
    union = (box[2] - box[0]) * (box[3] - box[1]) + w * h - inter
    assert inter / union > 0.8
    for k, name in enumerate(("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")):
        assert np.abs(landmarks[k] - np.asarray(theirs["keypoints"][name])).max() < 6, name


def photo_tree(root, olivetti, background, people=9, per_person=3, size=(480, 360)):
    """root/person_NN/k.jpg: Olivetti people in the street, turned a little; plus person_00's
    landscape.jpg (no face) and a truncated file."""
    rng = np.random.default_rng(0)
    for person in range(people):
        for k in range(per_person):
            side, margin = int(rng.integers(100, 160)), 100
            rgb = photo(olivetti[person * 10 + k], background, side, float(rng.uniform(-10, 10)),
                        (int(rng.integers(margin, size[0] - margin)), int(rng.integers(margin, size[1] - margin))))
            path = root / f"person_{person:02d}" / f"{k}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path, quality=92)
    background.convert("RGB").resize(size).save(root / "person_00" / "landscape.jpg")
    (root / "person_01" / "cut.jpg").write_bytes((root / "person_01" / "0.jpg").read_bytes()[:300])
    return root


@needs_mtcnn
def test_a_photo_without_a_face_is_counted_and_listed_not_a_crash(olivetti, data_root, tmp_path):
    from tasks.faces.detect import FaceCropper

    tree = photo_tree(tmp_path / "people", olivetti, Image.open(data_root / BACKGROUND), people=2, per_person=2)
    crop = FaceCropper("mtcnn")
    faces = ids.load_identity_folder(tree, 32, crop)
    assert len(faces) == 4 and faces.images.shape == (4, 32, 32, 3)
    reasons = {item["path"].rsplit("/", 1)[-1]: item for item in faces.skipped}
    assert set(reasons) == {"landscape.jpg", "cut.jpg"}
    assert reasons["landscape.jpg"]["no_face"] and "no face found by the mtcnn detector" in reasons["landscape.jpg"][
        "reason"] and "landscape.jpg" in reasons["landscape.jpg"]["reason"]
    assert "not a readable image" in reasons["cut.jpg"]["reason"] and "no_face" not in reasons["cut.jpg"]
    assert crop.stats["images"] == 5 and crop.stats["faces"] == 4 and crop.stats["no_face"] == 1
    with pytest.raises(ids.NoFaceFound, match="landscape.jpg: no face found"):
        ids.read_face(tree / "person_00" / "landscape.jpg", 32, crop)


def test_unknown_detectors_and_missing_packages_are_clear_config_errors(tmp_path, monkeypatch, capsys):
    from shared import config as config_lib
    from shared.config import ConfigError
    from tasks.faces import detect
    from tasks.faces.config import FacesConfig

    with pytest.raises(ConfigError, match="data.detector"):
        config_lib.apply_overrides(FacesConfig(), ["data.detector=dlib"])
    assert main(["faces", "train", "--preset", "smoke", "--workdir", str(tmp_path / "run"),
                 "--set", "data.detector=dlib"]) == 2
    assert "data.detector" in capsys.readouterr().err
    cfg = FacesConfig()
    cfg.data.detect_faces = True
    with pytest.raises(ConfigError, match="needs data.source=folder"):
        config_lib.validate(cfg)
    cfg.data.source, cfg.data.path = "folder", str(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("mtcnn", "cv2")
                        else real(name, *a))
    for name, package in (("mtcnn", "'mtcnn'"), ("opencv", "'opencv-python-headless<5'")):
        cfg.data.detector = name
        with pytest.raises(ConfigError, match=rf"data.detector={name} needs the {package} package.*faces-detect"):
            config_lib.validate(cfg)
    assert "unknown detector 'dlib'" in detect.missing_package("dlib")


@needs_mtcnn
def test_verify_and_enroll_detect_faces_when_the_run_did(olivetti, data_root, tmp_path, monkeypatch, capsys):
    """The commands' inputs go through the run's detector (the model itself is replaced by a
    pixel embedding: the wiring is under test, the slow test below runs the real thing)."""
    from types import SimpleNamespace

    from tasks.faces import predict
    from tasks.faces.config import smoke

    tree = photo_tree(tmp_path / "people", olivetti, Image.open(data_root / BACKGROUND), people=2, per_person=2)
    model = tmp_path / "model.keras"
    model.write_bytes(b"stand-in")
    config = smoke()
    config.data.source, config.data.path, config.data.detect_faces = "folder", str(tree), True
    run = SimpleNamespace(config=config, options={"threshold": 0.5, "gallery": str(tmp_path / "g.npz")},
                          dir=SimpleNamespace(require_model=lambda: model, root=tmp_path))
    seen = []

    def embed(run, images):
        seen.append(images.shape)
        flat = images.reshape(len(images), -1).astype(np.float64)
        flat -= flat.mean(1, keepdims=True)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    monkeypatch.setattr(predict, "_embed", embed)
    a, b = str(tree / "person_00" / "0.jpg"), str(tree / "person_00" / "1.jpg")
    result = predict.verify(run, [a, b])
    assert seen == [(2, 64, 64, 3)] and 0 <= result["distance"] < 2  # the smoke preset's data.image_size
    assert predict.verify(run, [a, a])["distance"] < 1e-6
    with pytest.raises(ids.NoFaceFound, match="landscape.jpg: no face found by the mtcnn detector"):
        predict.verify(run, [a, str(tree / "person_00" / "landscape.jpg")])
    assert predict.enroll(run, [str(tree)])["enrolled"] == 4
    out = capsys.readouterr().out
    assert "2 skipped" in out and "landscape.jpg: no face found" in out and "cut.jpg: not a readable" in out


@pytest.mark.slow  # trains the smoke preset on 27 photos (detection ~5 s, training ~30-120 s on 2 busy cores)
@needs_mtcnn
@pytest.mark.backend
def test_train_verify_and_enroll_on_photos_go_through_the_detector(olivetti, data_root, tmp_path, capsys):
    tree = photo_tree(tmp_path / "people", olivetti, Image.open(data_root / BACKGROUND))
    workdir = tmp_path / "run"
    settings = ("data.source=folder", f"data.path={tree}", "data.detect_faces=true", "eval.pca_components=4")
    assert run_cli("faces", "run", workdir, "--preset", "smoke", *(f"--set={item}" for item in settings),
                   data_root=data_root) == 0
    training = json.loads((workdir / "training.json").read_text())
    data = training["data"]
    no_face = [item["path"] for item in training["skipped"] if item.get("no_face")]
    assert data["detect_detector"] == "mtcnn" and data["detect_no_face"] == len(no_face) <= 3
    assert data["images"] == 28 - len(no_face) and data["detect_images_per_second"] > 0
    assert str(tree / "person_00" / "landscape.jpg") in no_face  # an Olivetti face may be missed too
    assert any(item["path"].endswith("cut.jpg") for item in training["skipped"])
    assert "landscape.jpg" in (workdir / "report/index.html").read_text()

    a, b = str(tree / "person_03" / "0.jpg"), str(tree / "person_03" / "1.jpg")
    assert run_cli("faces", "verify", workdir, a, b, "--out", str(tmp_path / "out")) == 0
    assert json.loads((tmp_path / "out/verify.json").read_text())["distance"] >= 0
    assert main(["faces", "verify", a, str(tree / "person_00" / "landscape.jpg"), "--workdir", str(workdir)]) == 2
    assert "landscape.jpg: no face found by the mtcnn detector" in capsys.readouterr().err
    assert run_cli("faces", "enroll", workdir, str(tree), "--gallery", str(tmp_path / "g.npz")) == 0
    out = capsys.readouterr().out
    assert f"enrolled {27 - len(no_face) + 1} images" in out and f"{len(no_face) + 1} skipped" in out
    assert "landscape.jpg: no face found" in out
