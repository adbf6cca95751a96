"""The benchmarks' shared pieces (their timings are never asserted)."""

import pytest

from benchmarks import classification, common, detection


def test_both_benchmarks_share_the_common_flags():
    for module, extra in ((classification, []), (detection, ["--image-size", "320"])):
        args = module.parse_args(["--images", "8", "--epochs", "3", "--no-peer", *extra])
        assert (args.images, args.epochs, args.no_peer, args.precision) == (8, 3, True, "auto")
    with pytest.raises(SystemExit):
        classification.parse_args(["--epochs", "1"])


def test_summarize_leaves_the_warm_up_epoch_out():
    summary = common.summarize([10.0, 2.0, 2.0], images_per_epoch=100)
    assert summary["first_epoch_s"] == 10.0 and summary["images_per_s"] == pytest.approx(50.0)
    assert set(common.hardware()) == {"cpu", "cpu_cores", "gpu"}
