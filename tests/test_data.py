import zipfile

import pytest
import torch

from paradox_utils import data


def test_full_cifar10(cifar_train, cifar_test):
    assert cifar_train.images.shape == (50_000, 3, 32, 32) and cifar_train.images.dtype == torch.uint8
    assert torch.equal(cifar_train.labels.bincount(), torch.full((10,), 5000))
    assert cifar_test.images.shape == (10_000, 3, 32, 32)
    assert torch.equal(cifar_test.labels.bincount(), torch.full((10,), 1000))
    assert cifar_test.classes == data.CIFAR10_CLASSES


def test_second_load_reads_the_cache(cifar_source, cifar_test, monkeypatch):
    def no_decoding(*args):
        raise AssertionError(f"decoded again instead of reading the cache: {args}")

    monkeypatch.setattr(data, "_decode_cifar10", no_decoding)
    again = data.load_cifar10("test", source=cifar_source)
    assert torch.equal(again.images, cifar_test.images) and torch.equal(again.labels, cifar_test.labels)


def _synthetic(per_class=30):
    shuffle = torch.randperm(10 * per_class, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(10).repeat_interleave(per_class)[shuffle]
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    return data.ImageSet(images, labels, torch.arange(len(labels)), list(data.CIFAR10_CLASSES))


def test_stratified_subset_is_seeded_and_balanced():
    full = _synthetic()
    a = data.stratified_subset(full, 7, seed=1)
    b = data.stratified_subset(full, 7, seed=1)
    c = data.stratified_subset(full, 7, seed=2)
    assert len(a) == 70 and torch.equal(a.labels.bincount(), torch.full((10,), 7))
    assert torch.equal(a.index, b.index) and not torch.equal(a.index, c.index)
    assert torch.equal(a.images, full.images[a.index]) and torch.equal(a.labels, full.labels[a.index])
    assert len(a.index.unique()) == 70  # without replacement
    with pytest.raises(ValueError, match="fewer than"):
        data.stratified_subset(full, 31)


def _tiny_tree(root, classes=data.CIFAR10_CLASSES, per_class=2):
    from PIL import Image

    for split in ("train", "test"):
        for i, name in enumerate(classes):
            folder = root / "tree" / split / name
            folder.mkdir(parents=True)
            for k in range(per_class):
                Image.new("RGB", (32, 32), (i * 20, k * 50, 7)).save(folder / f"{k:04d}.png")
    return root / "tree"


def test_image_folder_and_zip_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    tree = _tiny_tree(tmp_path)
    from_tree = data.load_cifar10("train", source=tree)
    assert from_tree.images.shape == (20, 3, 32, 32)
    assert from_tree.labels.tolist() == [i // 2 for i in range(20)]
    assert int(from_tree.images[4, 0, 0, 0]) == 40  # class 2, red = 2 * 20
    archive = _zip_of(tree, tmp_path / "c.zip")
    from_zip = data.load_cifar10("train", source=archive)
    assert torch.equal(from_zip.images, from_tree.images)
    monkeypatch.setenv("PARADOX_CIFAR10", str(archive))
    assert torch.equal(data.load_cifar10("train").labels, from_tree.labels)


def test_bad_sources_give_one_clear_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_cifar10(source=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        data.load_cifar10(source=tmp_path / "empty")
    odd = _tiny_tree(tmp_path, classes=[*data.CIFAR10_CLASSES[:9], "zebra"])
    with pytest.raises(ValueError, match="unexpected \\['zebra'\\]"):
        data.load_cifar10(source=odd)
    with pytest.raises(ValueError, match="Unknown CIFAR-10 split"):
        data.load_cifar10("validation")


def test_second_load_decodes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    tree = _tiny_tree(tmp_path)
    decode, calls = data._decode_cifar10, []
    monkeypatch.setattr(data, "_decode_cifar10", lambda *args: calls.append(args) or decode(*args))
    first = data.load_cifar10("test", source=tree)
    assert len(calls) == 1 and len(list((tmp_path / "data" / "cache").glob("cifar10-test-*"))) == 1
    again = data.load_cifar10("test", source=tree)
    assert len(calls) == 1, "the second load decoded the source again instead of reading the cache"
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    data.load_cifar10("test", source=tree, cache=False)
    assert len(calls) == 2


def _zip_of(tree, archive):
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for file in sorted(tree.rglob("*.png")):
            zf.write(file, f"top/{file.relative_to(tree)}")
    return archive


def test_truncated_or_corrupt_zip(tmp_path, monkeypatch):
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    blob = _zip_of(_tiny_tree(tmp_path), tmp_path / "whole.zip").read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        data.load_cifar10("test", source=truncated)
    damaged = bytearray(blob)
    with zipfile.ZipFile(tmp_path / "whole.zip") as zf:
        member = next(i for i in zf.infolist() if "/test/" in i.filename)
    damaged[member.header_offset + 30 + len(member.filename) + 10] ^= 0xFF  # inside its stored bytes
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        data.load_cifar10("test", source=corrupt)


def test_stale_or_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    """The cache is derived data: when its source changed or the file is damaged it is
    decoded again (with a warning naming the reason), never used and never a dead end."""
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    tree = _tiny_tree(tmp_path)
    first = data.load_cifar10("test", source=tree)
    (tree / "test" / "zzz-added-later.txt").write_text("the source changed")
    with pytest.warns(UserWarning, match="does not match its source"):
        again = data.load_cifar10("test", source=tree)
    assert torch.equal(again.images, first.images)
    cache = next((tmp_path / "data" / "cache").glob("cifar10-test-*"))
    cache.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        assert torch.equal(data.load_cifar10("test", source=tree).images, first.images)
    assert torch.equal(data.load_cifar10("test", source=tree).images, first.images)  # rebuilt: no warning


def test_imagenet_sample(imagenet_root):
    val = data.load_imagenet("val", source=imagenet_root)
    assert len(val) == 20
    images, labels, index = next(val.batches(20))
    assert images.shape == (20, 3, 224, 224) and images.dtype == torch.uint8
    assert labels.min() >= 0 and labels.max() < 1000 and 22 in labels.tolist()  # folder names are class indices
    train = data.load_imagenet("val", source=imagenet_root, train=True)
    assert train[0][0].shape == (3, 224, 224)
    with pytest.raises(FileNotFoundError):
        data.load_imagenet(source="/nonexistent/imagenet")


def test_a_source_is_checked_before_training_without_decoding_it(tmp_path, monkeypatch):
    """check_source, run once before any network trains, refuses in one sentence an empty file, a
    truncated zip and a zip laid out otherwise than train/<class>/, test/<class>/ with 32×32 images,
    and opens one image of each class and split, never the whole source."""
    monkeypatch.setenv("PARADOX_DATA_DIR", str(tmp_path / "data"))
    tree = _tiny_tree(tmp_path, per_class=3)
    whole = _zip_of(tree, tmp_path / "whole.zip")
    monkeypatch.setattr(data, "_decode_cifar10", lambda *args: pytest.fail("the check decoded a whole split"))
    opened, open_image = [], data.Image.open
    monkeypatch.setattr(data.Image, "open", lambda *args: opened.append(args) or open_image(*args))
    for source in (whole, tree):
        data.check_source("cifar10", source)
    assert len(opened) == 2 * 2 * 10  # two sources × two splits × ten classes
    assert not (tmp_path / "data" / "cache").exists()  # nothing decoded, nothing cached
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    flat = tmp_path / "flat.zip"  # the class folders without train/ and test/
    with zipfile.ZipFile(flat, "w") as zf:
        for file in sorted((tree / "train").rglob("*.png")):
            zf.write(file, f"cifar/{file.relative_to(tree / 'train')}")
    no_test = tmp_path / "no-test.zip"
    with zipfile.ZipFile(no_test, "w") as zf:
        for file in sorted((tree / "train").rglob("*.png")):
            zf.write(file, f"train/{file.relative_to(tree / 'train')}")
    large = _tiny_tree(tmp_path / "large", per_class=1)
    for image in large.rglob("*.png"):
        data.Image.new("RGB", (64, 64)).save(image)
    for source, problem in [(empty, "empty.zip is not a readable zip file"),
                            (truncated, "truncated.zip is not a readable zip file"),
                            (flat, "flat.zip holds no images under train/<class>/"),
                            (no_test, "no-test.zip holds no images under test/<class>/"),
                            (_zip_of(large, tmp_path / "large.zip"), r"large.zip: an image of class airplane is "
                                                                     r"\(3, 64, 64\), not \(3, 32, 32\)")]:
        with pytest.raises(ValueError, match=f"{problem}.*; point PARADOX_CIFAR10 at .*a zip of one\\)\\.$"):
            data.check_source("cifar10", source)


def test_an_imagenet_source_is_checked_for_its_class_folders(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "0022").mkdir(parents=True)
        data.Image.new("RGB", (40, 30)).save(tmp_path / split / "0022" / "a.jpg")
    data.check_source("imagenet", tmp_path)
    (tmp_path / "val" / "0022" / "a.jpg").unlink()
    with pytest.raises(ValueError, match="val holds no images in <class>/ sub-folders"):
        data.check_source("imagenet", tmp_path)
