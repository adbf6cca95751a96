"""Style transfer: the perceptual losses against numpy, the optimisation lowering each term,
the stylizer's output size, images of every kind, tiles, and the task end to end on the
smoke preset (train, evaluate, export reloaded, report, transfer, stylize, clear errors)."""

import json

import numpy as np
import pytest
from PIL import Image

from shared.cli import main
from shared.config import ConfigError, apply_overrides
from shared.testing import run_cli, train_killed_then_resumed
from shared.training import read_history
from tasks.style import images as image_lib
from tasks.style.config import VGG19_CONV_LAYERS, ModelConfig, TransferConfig, smoke
from tasks.style.tiles import stylize_tiled

TINY_LAYERS = dict(content_layer="block2_conv2", style_layers=("block1_conv1", "block2_conv1"))


@pytest.fixture(scope="module")
def perceptual():
    from tasks.style.losses import PerceptualLoss

    return PerceptualLoss(ModelConfig(**TINY_LAYERS))


def _smooth_image(seed, side=24):
    rng = np.random.default_rng(seed)
    return image_lib.resize(rng.uniform(0, 255, (4, 4, 3)).astype(np.float32), (side, side))


# Losses against numpy -------------------------------------------------------------------------
@pytest.mark.backend
def test_gram_and_total_variation_match_numpy():
    from keras import ops

    from tasks.style.losses import gram, total_variation

    features = np.random.default_rng(0).normal(size=(2, 5, 7, 4)).astype(np.float32)
    flat = features.reshape(2, 35, 4)
    np.testing.assert_allclose(ops.convert_to_numpy(gram(features)),
                               np.einsum("bnc,bnd->bcd", flat, flat) / 35, rtol=1e-5, atol=1e-6)
    image = np.random.default_rng(1).uniform(0, 255, (1, 6, 5, 3)).astype(np.float32)
    expected = (np.mean(np.diff(image, axis=1) ** 2) + np.mean(np.diff(image, axis=2) ** 2)) / 255**2
    np.testing.assert_allclose(float(total_variation(image)), expected, rtol=1e-5)
    assert float(total_variation(np.full((1, 9, 7, 3), 77.0, np.float32))) == 0.0


@pytest.mark.backend
def test_loss_terms_are_zero_for_the_targets_own_image_and_styles_blend_by_weight(perceptual):
    from keras import ops

    image, other = _smooth_image(0), _smooth_image(1)
    terms = perceptual.terms(image[None], perceptual.content_target(image), perceptual.style_targets([image]))
    assert float(terms["content"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["style"]) == pytest.approx(0.0, abs=1e-6)
    moved = perceptual.terms(other[None], perceptual.content_target(image), perceptual.style_targets([image]))
    assert float(moved["content"]) > 1e-3 and float(moved["style"]) > 1e-3
    blended = perceptual.style_targets([image, other], [3.0, 1.0])
    alone = [perceptual.style_targets([x]) for x in (image, other)]
    for layer, target in enumerate(blended):
        np.testing.assert_allclose(target, 0.75 * alone[0][layer] + 0.25 * alone[1][layer], rtol=1e-4, atol=1e-6)
    # the random mode is labelled and its layers are balanced (unit mean square on the probe scale)
    assert "random features" in perceptual.mode and not perceptual.pretrained
    found = perceptual.features(image[None])
    assert all(0.1 < float(ops.mean(ops.square(v))) < 100 for v in found.values())


def test_a_layer_vgg19_lacks_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="block5_conv9.*block1_conv1, block1_conv2"):
        apply_overrides(smoke(), ["model.style_layers=block1_conv1,block5_conv9"])
    with pytest.raises(ConfigError, match="one per layer"):
        apply_overrides(smoke(), ["model.style_layer_weights=1,2"])
    assert len(VGG19_CONV_LAYERS) == 16


@pytest.mark.backend
def test_a_missing_or_wrong_weights_file_names_it_and_the_layers(tmp_path):
    import h5py

    from tasks.style.losses import WeightsFileError, load_vgg19

    with pytest.raises(WeightsFileError, match="no file .*nothing.h5.*block5_conv4"):
        load_vgg19(str(tmp_path / "nothing.h5"))
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as file:
        file.create_dataset("dense/kernel", data=np.zeros((3, 3)))
    with pytest.raises(WeightsFileError, match="wrong.h5 does not fit VGG19.*block1_conv1"):
        load_vgg19(str(wrong))


def test_a_weights_file_of_the_right_layers_loads(tmp_path):
    pytest.importorskip("h5py")
    from tasks.style.losses import load_vgg19, vgg19

    reference = vgg19()
    reference.get_layer("block1_conv1").set_weights([np.full((3, 3, 3, 64), 0.5, np.float32), np.ones(64, np.float32)])
    path = tmp_path / "vgg19_notop.weights.h5"
    reference.save_weights(str(path))
    model, mode = load_vgg19(str(path))
    assert "pretrained features" in mode and str(path) in mode
    np.testing.assert_allclose(model.get_layer("block1_conv1").get_weights()[0], 0.5)


# Gatys ----------------------------------------------------------------------------------------
@pytest.mark.backend
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimisation_lowers_every_term(perceptual, optimizer):
    """Each term alone (the others weighted 0) falls from a noise start; all together, the total falls."""
    import dataclasses

    from tasks.style.gatys import transfer

    stripes = np.zeros((24, 24, 3), np.float32)
    stripes[:, ::4] = (250, 40, 10)  # vertical red stripes: far from the noise it starts from
    content = _smooth_image(2, 24)
    config = TransferConfig(size=24, iterations=12, optimizer=optimizer, learning_rate=8.0, init="noise",
                            log_every=4)
    original = perceptual.config
    try:
        for term in ("content", "style", "tv", "total"):
            weights = {f"{t}_weight": float(term in (t, "total")) for t in ("content", "style", "tv")}
            perceptual.config = dataclasses.replace(original, **weights)
            result = transfer(perceptual, content, [stripes], config, seed=0, log=None)
            first, last = result.history[0], result.history[-1]
            assert last[term] < 0.9 * first[term], (term, first, last)
    finally:
        perceptual.config = original
    assert result.image.shape == (24, 24, 3) and 0 <= result.image.min() and result.image.max() <= 255
    assert result.iterations >= 10 and result.seconds > 0


@pytest.mark.backend
def test_multi_scale_and_colour_preservation(perceptual):
    from tasks.style.gatys import transfer

    content, style = _smooth_image(4, 40), _smooth_image(5, 40)
    config = TransferConfig(size=40, iterations=2, scales=2, preserve_color="luminance", log_every=1)
    result = transfer(perceptual, content, [style], config, seed=0, log=None)
    assert [h["side"] for h in result.history][0] == 20 and result.history[-1]["side"] == 40
    assert result.image.shape == (40, 40, 3)
    with pytest.raises(ConfigError, match="coarsest side"):
        TransferConfig(size=40, scales=3).validate()


def test_colour_preservation_helpers():
    rng = np.random.default_rng(0)
    content = rng.uniform(96, 160, (16, 16, 3)).astype(np.float32)  # inside the gamut after the swap
    result = rng.uniform(96, 160, (16, 16, 3)).astype(np.float32)
    kept = image_lib.keep_luminance(result, content)
    yiq = image_lib._YIQ
    np.testing.assert_allclose((kept @ yiq.T)[..., 0], (result @ yiq.T)[..., 0], atol=0.5)
    source = rng.normal(100, 10, (40, 40, 3)).astype(np.float32)
    target = np.stack([rng.normal(m, s, (40, 40)) for m, s in ((50, 5), (150, 20), (200, 8))], -1)
    matched = image_lib.match_color(source, target.astype(np.float32))
    np.testing.assert_allclose(matched.reshape(-1, 3).mean(0), target.reshape(-1, 3).mean(0), atol=1.0)


# Stylizer, tiles, images ----------------------------------------------------------------------
@pytest.mark.backend
def test_stylizer_output_has_the_input_size_for_odd_sizes():
    from tasks.style.stylizer import transformation_network

    network = transformation_network(filters=4, residual_blocks=1)
    for height, width in ((33, 47), (5, 3)):
        out = np.asarray(network.predict_on_batch(np.zeros((1, height, width, 3), np.float32)))  # one compile
        assert out.shape == (1, height, width, 3) and 0 <= out.min() and out.max() <= 255
    assert not any("Transpose" in type(layer).__name__ for layer in network.layers)


def test_tiles_cover_the_image_and_blend_without_seams():
    image = np.random.default_rng(0).uniform(0, 255, (70, 101, 3)).astype(np.float32)
    calls = []

    def identity(piece):
        calls.append(piece.shape)
        assert max(piece.shape[:2]) <= 32
        return piece

    out = stylize_tiled(identity, image, tile=32, overlap=8)
    np.testing.assert_allclose(out, image, rtol=1e-5)
    assert len(calls) > 4
    assert stylize_tiled(lambda p: p + 1, image, tile=128, overlap=8).shape == image.shape


def test_grey_palette_rgba_16_bit_huge_and_broken_images(tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((5, 6), 100, np.uint8), "L").save(grey)
    assert image_lib.load_image(grey).shape == (5, 6, 3)
    palette = tmp_path / "palette.png"
    Image.fromarray(np.full((5, 6, 3), (255, 0, 0), np.uint8)).convert("P").save(palette)
    np.testing.assert_allclose(image_lib.load_image(palette)[0, 0], (255, 0, 0))
    rgba = tmp_path / "rgba.png"
    pixels = np.zeros((4, 4, 4), np.uint8)  # transparent black: white after compositing
    Image.fromarray(pixels, "RGBA").save(rgba)
    np.testing.assert_allclose(image_lib.load_image(rgba), 255)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 5), 65535 // 2, np.uint16)).save(deep)
    assert Image.open(deep).mode.startswith("I")
    np.testing.assert_allclose(image_lib.load_image(deep), 127.5, atol=1)
    huge = tmp_path / "huge.jpg"
    Image.fromarray(np.zeros((300, 500, 3), np.uint8)).save(huge)
    assert image_lib.load_image(huge, max_side=100).shape == (60, 100, 3)
    assert "500x300 resized to 100x60" in capsys.readouterr().out
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(huge.read_bytes()[:400])
    with pytest.raises(image_lib.ImageFileError, match="cut.jpg"):
        image_lib.load_image(truncated)
    with pytest.raises(image_lib.ImageFileError, match="not found.*missing.png"):
        image_lib.load_image(tmp_path / "missing.png")
    image_lib.save_image(np.zeros((3, 3, 3)), tmp_path / "out" / "result.png")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["result.png"]


# End to end -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_root):
    workdir = tmp_path_factory.mktemp("style") / "run"
    assert run_cli("style", "run", workdir, "--preset", "smoke", data_root=data_root) == 0
    return workdir


@pytest.mark.backend
def test_run_writes_every_artifact_and_names_the_feature_mode(smoke_run):
    for name in ("config.json", "model.keras", "training.json", "gatys/result.png", "gatys/result.json",
                 "evaluation/results.json", "export/saved_model", "export/export.json", "report/index.html",
                 "report/grid.png", "report/losses.png"):
        assert (smoke_run / name).exists(), name
    for name in ("training.json", "evaluation/results.json", "export/export.json"):
        assert "random features" in (smoke_run / name).read_text()
    assert "random features" in (smoke_run / "report/index.html").read_text()
    gatys = json.loads((smoke_run / "gatys/result.json").read_text())
    assert gatys["iterations"] == 8 and gatys["history"][-1]["style"] < gatys["history"][0]["style"]
    results = json.loads((smoke_run / "evaluation/results.json").read_text())
    assert set(results["images_per_second"]) == {"64"} and results["images_per_second"]["64"] > 0
    # the tune objective: val_loss on crops of the held-out photo (2 of the kit's 3 trained on)
    training = json.loads((smoke_run / "training.json").read_text())
    assert training["content_photos"] == 2 and results["validation_photos"] == training["validation_photos"]
    history = read_history(smoke_run / "logs/history.csv")
    assert len(history["val_loss"]) == 1 and np.isfinite(history["val_loss"][0]) and history["val_loss"][0] > 0
    assert history["val_loss"][0] == pytest.approx(sum(history[f"val_{k}"][0] for k in ("content", "style", "tv")))


@pytest.mark.backend
def test_export_takes_uint8_of_any_size_and_returns_the_same_size(smoke_run):
    tf = pytest.importorskip("tensorflow")
    loaded = tf.saved_model.load(str(smoke_run / "export/saved_model"))
    for shape in ((23, 41, 3), (64, 48, 3)):
        image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        out = loaded.signatures["stylize"](image=tf.constant(image))["image"].numpy()
        assert out.shape == shape and out.dtype == np.uint8
    check = json.loads((smoke_run / "export/export.json").read_text())["check"]
    assert check["max_difference_levels"] <= 1


@pytest.mark.backend
def test_stylize_in_tiles_and_transfer_commands(smoke_run, data_root, tmp_path, capsys):
    photo = data_root / "style-images/content/hoovertowernight.jpg"  # 760x400 > stylizer.max_side 64
    assert run_cli("style", "stylize", smoke_run, str(photo), "--out", str(tmp_path / "out")) == 0
    written = np.asarray(Image.open(tmp_path / "out/hoovertowernight_stylized.png"))
    assert written.shape == (135, 256, 3)  # data.max_side 256 for the smoke preset
    assert "in tiles of 64 px" in capsys.readouterr().out
    style = data_root / "style-images/style/udnie_picabia.jpg"
    assert main(["style", "transfer", str(photo), str(style), str(style), "--preset", "smoke", "--quiet",
                 "--set", "transfer.iterations=2", "--set", "data.style_weights=2,1",
                 "--workdir", str(tmp_path / "t"), "--out", str(tmp_path / "result.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "result.png")).shape == (25, 48, 3)  # 760x400 at 48 px
    assert "random features" in capsys.readouterr().out


@pytest.mark.slow  # two smoke trainings: ~35 s of CPU per backend
@pytest.mark.backend
def test_stylizer_training_resumes_exactly_after_a_kill(tmp_path, monkeypatch, data_root, capsys):
    """Killed when its second epoch begins, `--resume` ends with the weights, history and
    validation loss of an uninterrupted run (the crops of step k depend only on (seed, k)),
    and keeps the Gatys result the killed run had finished."""
    import keras

    from tasks.style.stylizer import CropLike  # noqa: F401 - registers the custom layer

    args = ("--preset", "smoke", "--set", "train.epochs=2", "--set", "transfer.iterations=2")
    train_killed_then_resumed("style", tmp_path, args, monkeypatch, data_root=data_root)
    out = capsys.readouterr().out
    assert out.count("style: Gatys result") == 2 and "--resume: the Gatys result" in out  # not recomputed
    np.testing.assert_array_equal(*(np.asarray(Image.open(tmp_path / name / "gatys/result.png"))
                                    for name in ("straight", "killed")))
    probe = np.random.default_rng(0).uniform(0, 255, (2, 37, 29, 3)).astype(np.float32)
    straight, resumed = (keras.saving.load_model(str(tmp_path / name / "model.keras"), compile=False)
                         for name in ("straight", "killed"))
    np.testing.assert_allclose(np.asarray(resumed.predict_on_batch(probe)),
                               np.asarray(straight.predict_on_batch(probe)), atol=1e-3)
    assert json.loads((tmp_path / "killed/training.json").read_text())["resumed_from_step"] == 2
    histories = [read_history(tmp_path / name / "logs/history.csv") for name in ("straight", "killed")]
    assert len(histories[1]["loss"]) == 2
    for key in ("loss", "val_loss", "val_style"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-4)


def test_stylize_without_a_stylizer_and_unreadable_inputs_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert main(["style", "stylize", str(bad), "--workdir", str(tmp_path / "empty")]) == 2
    assert "No trained model" in capsys.readouterr().err
    assert main(["style", "transfer", str(bad), str(bad), "--preset", "smoke", "--workdir", str(tmp_path / "t"),
                 "--out", str(tmp_path / "r.png")]) == 2
    assert "Cannot read the image" in capsys.readouterr().err and not (tmp_path / "r.png").exists()
    assert main(["style", "transfer", str(bad), "--preset", "smoke", "--workdir", str(tmp_path / "t")]) == 2
    assert "needs a content image and at least one style image" in capsys.readouterr().err


def test_validation_photos_are_held_out_and_their_crops_fixed():
    from tasks.style import data as data_lib

    trained, held = data_lib.split_photos(5, 2, seed=0)
    assert len(held) == 2 and sorted(trained + held) == list(range(5)) and not set(trained) & set(held)
    assert data_lib.split_photos(5, 2, seed=0) == (trained, held) and data_lib.split_photos(3, 0, 0) == ([0, 1, 2], [])
    with pytest.raises(ValueError, match="data.val_photos=1 leaves no training photo: photos/ has 1"):
        data_lib.split_photos(1, 1, 0, "photos/")
    photos = [_smooth_image(seed, side=40) for seed in range(2)]
    crops = data_lib.fixed_crops(photos, 16, 3, seed=0)
    assert crops.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(crops, data_lib.fixed_crops(photos, 16, 3, seed=0))
    with pytest.raises(ConfigError, match="data.val_crops"):
        apply_overrides(smoke(), ["data.val_crops=0"])


def test_tune_refuses_gatys_and_the_keys_that_define_the_loss():
    from tasks.style import TASK

    assert (TASK.tune_metric, TASK.tune_direction) == ("val_loss", "minimize")
    config = TASK.make_config("smoke", [])
    TASK.check_tune(config, ["train.learning_rate", "stylizer.filters"])
    with pytest.raises(ConfigError, match="searches the fast stylizer.*transfer.iterations"):
        TASK.check_tune(config, ["train.learning_rate", "transfer.iterations"])
    with pytest.raises(ConfigError, match="model.style_weight.*define the loss"):
        TASK.check_tune(config, ["model.style_weight"])
    with pytest.raises(ConfigError, match="data.val_photos=0"):
        TASK.check_tune(TASK.make_config("smoke", ["data.val_photos=0"]), ["train.learning_rate"])


def test_every_preset_is_valid_and_documented():
    from tasks.style import TASK
    from tasks.style.config import PRESETS

    for name, factory in PRESETS.items():
        apply_overrides(factory(), [])
        assert "Command: kts style run --preset " + name in factory.__doc__
    assert "Expect:" in TASK.describe_presets()


def test_benchmark_flags():
    from benchmarks import style as bench

    args = bench.parse_args(["--quick", "--no-peer", "--skip", "stylizer"])
    assert (args.size, args.iterations, args.no_peer, args.skip) == (128, 20, True, ["stylizer"])
    assert bench.parse_args([]).size == 512 and bench.parse_args([]).iterations == 500
    with pytest.raises(SystemExit):
        bench.parse_args(["--iterations", "1"])
