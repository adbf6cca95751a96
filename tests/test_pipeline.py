"""The grain builder: determinism by seed, exact resume by step, per-epoch reshuffle."""

import numpy as np
import pytest

from pipelines import builder, ops
from pipelines.sources import ArraySource


class PerElement:
    """A source without `gather`: forces the builder's per-element (grain shuffle) path."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        return self.source[index]


@pytest.fixture(params=["vectorised", "per_element"])
def path(request):
    return request.param


def _source(count=20, size=4, path="vectorised"):
    images = np.arange(count, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 1),
                                                                             np.uint8)
    source = ArraySource(images, np.arange(count) % 5, [str(i) for i in range(5)])
    return source if path == "vectorised" else PerElement(source)


def _ids(batch):
    return batch["image"][:, 0, 0, 0].tolist()


def _take(dataset, count):
    iterator = iter(dataset)
    return [next(iterator) for _ in range(count)]


def test_same_seed_same_stream_other_seed_other_stream(path):
    def stream(seed):
        dataset = builder.train_dataset(_source(path=path), batch_size=4, seed=seed)
        return [_ids(b) for b in _take(dataset, 10)]

    first, again, other = stream(1), stream(1), stream(2)
    assert first == again and first != other


def test_each_epoch_is_a_new_permutation_of_every_sample(path):
    dataset = builder.train_dataset(_source(path=path), batch_size=5, seed=0)
    batches = [_ids(b) for b in _take(dataset, 8)]
    epoch1, epoch2 = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(epoch1) == list(range(20)) == sorted(epoch2)
    assert epoch1 != epoch2


def test_resume_at_step_continues_the_same_stream(path):
    mix = ops.mixup_or_cutmix(0.4, 0.0)
    kwargs = dict(batch_size=4, seed=3, ops=[ops.resize((4, 4)), ops.one_hot(5)], batch_ops=[mix])
    full = _take(builder.train_dataset(_source(path=path), **kwargs), 12)
    resumed = _take(builder.train_dataset(_source(path=path), start_step=7, **kwargs), 5)
    for a, b in zip(full[7:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])


def test_eval_dataset_is_ordered_and_complete():
    batches = list(builder.eval_dataset(_source(), batch_size=6))
    assert [len(b["label"]) for b in batches] == [6, 6, 6, 2]
    assert sum((_ids(b) for b in batches), []) == list(range(20))


def test_mixup_and_cutmix_keep_label_mass():
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8),
             "label": np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]}
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        out = ops.mixup_or_cutmix(mixup, cutmix)(batch, np.random.default_rng(1))
        np.testing.assert_allclose(out["label"].sum(-1), 1.0, rtol=1e-6)
        assert out["image"].dtype == np.uint8 and out["image"].shape == batch["image"].shape


def test_resize_op_keeps_channels():
    element = {"image": np.zeros((8, 6, 1), np.uint8), "label": 0}
    assert ops.resize((16, 16))(element)["image"].shape == (16, 16, 1)
    assert ops.resize_array(np.zeros((3, 8, 8, 3), np.uint8), (4, 4)).shape == (3, 4, 4, 3)


def test_vectorised_and_per_element_paths_yield_the_same_kind_of_batch():
    kwargs = dict(batch_size=4, seed=0, ops=[ops.resize((8, 8)), ops.one_hot(5)],
                  finalize=ops.to_fit_tuple)
    for source in (_source(), _source(path="per_element")):
        images, labels, weights = next(iter(builder.train_dataset(source, **kwargs)))
        assert images.shape == (4, 8, 8, 1) and images.dtype == np.uint8
        assert labels.shape == (4, 5) and labels.dtype == np.float32
        np.testing.assert_array_equal(labels.sum(-1), 1.0)
        assert weights.shape == (4,) and weights.dtype == np.float32


def test_too_small_split_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than batch_size=64"):
        builder.train_dataset(_source(), batch_size=64, seed=0)


def test_worker_processes_yield_the_same_batches():
    kwargs = dict(batch_size=4, seed=5, ops=[ops.resize((4, 4)), ops.one_hot(5)],
                  batch_ops=[ops.mixup_or_cutmix(0.4, 1.0)], finalize=ops.to_fit_tuple)
    local = _take(builder.train_dataset(_source(), **kwargs), 6)
    workers = _take(builder.train_dataset(_source(), workers=2, **kwargs), 6)
    for a, b in zip(local, workers, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


class _Jitter:
    """A random element op (module level, so worker processes could receive it)."""

    def __call__(self, element, rng):
        shift = np.uint8(rng.integers(0, 100))
        return {**element, "image": element["image"] + shift}


def test_random_element_ops_are_seeded_by_position_and_resume_exactly():
    kwargs = dict(batch_size=4, seed=2, random_ops=[_Jitter()])
    full = _take(builder.train_dataset(_source(), **kwargs), 10)
    again = _take(builder.train_dataset(_source(), **kwargs), 10)
    resumed = _take(builder.train_dataset(_source(), start_step=6, **kwargs), 4)
    for a, b in zip(full, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
    for a, b in zip(full[6:], resumed, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
    assert len({int(b["image"][0, 0, 0, 0]) for b in full}) > 3  # it is random


def test_dynamic_shapes_keep_a_stated_batch_size_static():
    """Length-bucketed streams: every dimension unknown under TF except a stated batch size."""
    pytest.importorskip("tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the tf.data view is for the TensorFlow backend")
    batches = [({"source": np.ones((4, n), np.int32)}, np.ones((4, n), np.int32)) for n in (8, 16)]
    dataset = builder.step_dataset(lambda step: batches[step % 2])
    loose = builder.with_dynamic_shapes(dataset).element_spec
    stated = builder.with_dynamic_shapes(dataset, batch_size=4).element_spec
    assert loose[0]["source"].shape.as_list() == [None, None]
    assert stated[0]["source"].shape.as_list() == [4, None] and stated[1].shape.as_list() == [4, None]
    taken = builder.with_dynamic_shapes(dataset, batch_size=4).take(2).as_numpy_iterator()
    assert [x["source"].shape for x, _ in taken] == [(4, 8), (4, 16)]
