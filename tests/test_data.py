"""Decoding once, caching, splitting by seed, batch augmentation."""

import pytest
import torch

from smoea.data import augment, batches, draw_subset, load_splits
from smoea.errors import SmoeaError


def test_image_tree_and_archive_decode_to_the_same_arrays(image_tree, image_archive, tmp_path):
    a = load_splits("imagefolder", image_tree, val_size=30, seed=0)
    b = load_splits("cifar10", image_archive, val_size=30, seed=0)
    assert a.train.x.dtype == torch.uint8 and a.train.x.shape[1:] == (3, 16, 16)
    assert a.classes == b.classes == ["circle", "plain", "stripes"]
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert len(a.train) + len(a.val) == 150 and len(a.test) == 30


def test_decoded_arrays_are_cached_and_reused(image_archive, tmp_path, monkeypatch):
    load_splits("cifar10", image_archive, val_size=10, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1
    import smoea.data

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(smoea.data, "_decode", fail)
    again = load_splits("cifar10", image_archive, val_size=10, cache_dir=tmp_path / "c")
    assert len(again.train) == 140


def test_validation_split_is_fixed_by_seed_and_disjoint(image_tree):
    a = load_splits("imagefolder", image_tree, val_size=30, seed=3)
    b = load_splits("imagefolder", image_tree, val_size=30, seed=3)
    c = load_splits("imagefolder", image_tree, val_size=30, seed=4)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    rows = {bytes(x.numpy()) for x in a.train.x}
    assert not any(bytes(x.numpy()) in rows for x in a.val.x)
    assert torch.equal(draw_subset(a.val, 10, 0).x, draw_subset(b.val, 10, 0).x)


def test_augment_crops_and_flips_whole_batches():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    out = augment(x, torch.Generator().manual_seed(0), pad=0)
    for original, augmented in zip(x, out, strict=True):
        assert torch.equal(augmented, original) or torch.equal(augmented, original.flip(-1))
    padded = augment(x, torch.Generator().manual_seed(1), pad=2)
    assert padded.shape == x.shape
    assert torch.equal(
        augment(x, torch.Generator().manual_seed(5)), augment(x, torch.Generator().manual_seed(5))
    )


def test_batches_are_normalised_channels_last(tiny_data):
    x, y = next(batches(tiny_data[0], 32, [0.5] * 3, [0.25] * 3, torch.device("cpu")))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x, (tiny_data[0].x[:32].float() / 255 - 0.5) / 0.25)


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt"])
def test_bad_data_paths_raise_one_clear_error(tmp_path, case):
    path = tmp_path / "data.tar.gz"
    if case == "empty":
        path = tmp_path / "empty"
        path.mkdir()
    elif case == "corrupt":
        path.write_bytes(b"not an archive")
    with pytest.raises(SmoeaError):
        load_splits("imagefolder", path)


def test_held_out_validation_images_are_those_the_search_set_leaves_out():
    from smoea.data import TensorData, calibration_set, draw_subset, outside_subset

    x = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)
    val = TensorData(x, torch.zeros(50, dtype=torch.int64))
    search, rest = draw_subset(val, 20, 3), outside_subset(val, 20, 3)
    a, b = set(search.x.flatten().tolist()), set(rest.x.flatten().tolist())
    assert len(a) == 20 and len(b) == 30 and not a & b and a | b == set(range(50))
    calib = calibration_set(val, 10, 3)
    assert len(calib) == 10 and calib.x.flatten().tolist() != search.x.flatten().tolist()[:10]
