"""Datasets as uint8 tensors: CIFAR-10 (cached) and ImageNet (ImageFolder, streamed).

Where data comes from is one setting: ``PARADOX_CIFAR10`` / ``PARADOX_IMAGENET``
(a folder or a zip). CIFAR-10 accepts three forms of source:

* torchvision's ``cifar-10-batches-py`` folder (what ``CIFAR10(download=True)`` makes);
* an image-folder tree ``train/<class>/*``, ``test/<class>/*`` (any image format);
* a ``.zip`` of such a tree (the tree may sit under one top folder).

Without a setting, ``data/`` is searched, then torchvision downloads into ``data/``.
A source is decoded once into ``data/cache/*.safetensors`` ((N, 3, 32, 32) uint8 +
int64 labels); later loads read the cache (~0.1 s for the 50,000 training images).
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CIFAR10_CLASSES", "ImageSet", "ImageFolderSet", "check_source", "data_dir", "load_cifar10",
    "load_imagenet", "resolve_source", "stratified_subset",
]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]  # torchvision's CIFAR10.classes
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SPLITS = ("train", "test")
# what to do about a CIFAR-10 source that is missing or cannot be read
CIFAR10_HINT = ("point PARADOX_CIFAR10 at a copy (a cifar-10-batches-py folder, a train/ test/ image-folder tree, "
                "or a zip of one)")


def data_dir() -> Path:
    """Where datasets, caches and result tables live: ``$PARADOX_DATA_DIR`` or ``<repo>/data``."""
    return Path(os.environ.get("PARADOX_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


@dataclass
class ImageSet:
    """An in-memory labelled image set.

    images: (N, 3, H, W) uint8; labels: (N,) int64; index: (N,) int64 positions in
    the full split (they key the shared manipulation noise); classes: class names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, positions: torch.Tensor | np.ndarray) -> ImageSet:
        positions = torch.as_tensor(positions, dtype=torch.long)
        return ImageSet(self.images[positions], self.labels[positions], self.index[positions],
                        self.classes)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, labels, dataset indices) in order."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.images[start:stop], self.labels[start:stop], self.index[start:stop]

    def fingerprint(self) -> str:
        """sha256 of the pixels, labels and dataset indices: what an evaluation on this set saw."""
        digest = hashlib.sha256()
        for tensor in (self.images, self.labels, self.index):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()


# ----------------------------------------------------------------------------- CIFAR-10

def resolve_source(explicit: str | os.PathLike | None = None, env: str = "PARADOX_CIFAR10") -> Path | None:
    """The CIFAR-10 source: ``explicit``, else ``$PARADOX_CIFAR10``, else one found in ``data/``."""
    chosen = explicit if explicit is not None else os.environ.get(env) or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"CIFAR-10 source {path} does not exist "
                                    f"(set {env} to a cifar-10-batches-py folder, an image-folder tree or a zip).")
        return path
    root = data_dir()
    for candidate in [root / "cifar-10-batches-py", root / "cifar10", *sorted(root.glob("cifar10*.zip"))]:
        if candidate.exists():
            return candidate
    return None


def load_cifar10(split: str = "test", source: str | os.PathLike | None = None,
                 cache: bool = True, download: bool = True) -> ImageSet:
    """CIFAR-10 ``split`` ("train": 50,000 or "test": 10,000 images) as an :class:`ImageSet`.

    ``source`` overrides ``$PARADOX_CIFAR10``; with neither, ``data/`` is searched and
    then torchvision downloads (``download=True``). Raises one clear error when all fail.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown CIFAR-10 split {split!r}; valid: {list(SPLITS)}.")
    path = resolve_source(source)
    if path is None:
        path = _download_cifar10(download)
    cache_file = data_dir() / "cache" / f"cifar10-{split}-{_path_key(path)}.safetensors"
    fingerprint = _fingerprint(path)
    if cache and cache_file.exists():
        try:
            return _read_cache(cache_file, fingerprint)
        except ValueError as stale:  # derived data: rebuild it rather than stop the user
            warnings.warn(f"{stale} Rebuilding it.", stacklevel=2)
    images, labels = _decode_cifar10(path, split)
    dataset = ImageSet(images, labels, torch.arange(len(labels)), list(CIFAR10_CLASSES))
    if cache:
        _write_cache(cache_file, dataset, fingerprint)
    return dataset


def check_source(dataset: str = "cifar10", source: str | os.PathLike | None = None) -> None:
    """Check, before any network trains, that ``dataset``'s training and validation images can
    be read (``source`` overrides ``$PARADOX_CIFAR10`` / ``$PARADOX_IMAGENET``), without decoding
    them: a fault found here stops a run once, where each training job would fail with it.

    CIFAR-10 (found, or downloaded, as :func:`load_cifar10` finds it): a zip must open, its members
    lie within the file, and a zip or folder tree hold ``train/<class>/`` and ``test/<class>/`` with
    the ten classes, one image of each class and split decoding to 32×32; torchvision's batches
    must match their checksums. ImageNet: ``train/`` and ``val/`` hold images in class folders.
    Raises ValueError (FileNotFoundError for a source that is not there), one sentence."""
    if dataset == "imagenet":
        for split in ("train", "val"):
            load_imagenet(split, source)
        return
    path = resolve_source(source)
    if path is None:
        path = _download_cifar10(True)
    try:
        _check_cifar10(path)
    except ValueError as error:
        raise ValueError(f"{str(error).rstrip('.')}; {CIFAR10_HINT}.") from None


def _check_cifar10(path: Path) -> None:
    """:func:`check_source` for a CIFAR-10 source that exists: what :func:`_decode_cifar10` would
    refuse, found from the file list and one image of each class and split."""
    path = _batches_folder(path)
    if (path / "batches.meta").exists():
        for split in SPLITS:
            _batch_files(path, split)
        return
    for blobs in _image_blobs(path, SPLITS, first=True).values():
        _decode_images(blobs, path)


def _download_cifar10(download: bool) -> Path:
    target = data_dir()
    if not download:
        raise FileNotFoundError(f"No CIFAR-10 found in {target} and download=False: {CIFAR10_HINT}.")
    import torchvision  # late: the download path only

    try:
        torchvision.datasets.CIFAR10(target, train=False, download=True)
    except Exception as error:  # no network, a proxy, a full disk: one sentence either way
        raise FileNotFoundError(f"No CIFAR-10 in {target} and torchvision could not download it "
                                f"({type(error).__name__}: {error}): {CIFAR10_HINT}.") from error
    return target / "cifar-10-batches-py"


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def _fingerprint(path: Path) -> str:
    """Cheap identity of a source: name, size and mtime of the file (or the folder's entries)."""
    entries = [path] if path.is_file() else sorted(path.iterdir())
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in entries]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _decode_cifar10(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    path = _batches_folder(path)
    if (path / "batches.meta").exists():
        return _decode_batches(path, split)
    return _decode_images(_image_blobs(path, (split,))[split], path)


def _batches_folder(path: Path) -> Path:
    """``path``, or the ``cifar-10-batches-py`` folder inside it."""
    return path / "cifar-10-batches-py" if path.is_dir() and (path / "cifar-10-batches-py").is_dir() else path


def _image_blobs(path: Path, splits: tuple[str, ...], first: bool = False) -> dict[str, dict[str, list[bytes]]]:
    """The encoded images of each of ``splits`` in a zip or folder tree: split → class → images
    (:func:`_split_members`); ``first``: only the first image of each class. A zip that does not
    open, or whose members lie beyond its end or fail their checksum, is refused in one sentence."""
    if path.is_dir():
        members = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
        files = {split: _split_members(members, split, path, first) for split in splits}
        return {split: {k: [(path / n).read_bytes() for n in v] for k, v in by_class.items()}
                for split, by_class in files.items()}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"{path} is not a readable zip file (truncated or corrupt: {error}).") from error
    with archive:
        size = path.stat().st_size
        if any(i.header_offset + i.compress_size > size for i in archive.infolist()):
            raise ValueError(f"{path} is truncated or corrupt: some members lie beyond its end.")
        members = [n for n in archive.namelist() if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES]
        files = {split: _split_members(members, split, path, first) for split in splits}
        try:
            return {split: {k: [archive.read(n) for n in v] for k, v in by_class.items()}
                    for split, by_class in files.items()}
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path} is truncated or corrupt: {error}.") from error


def _split_members(members: list[str], split: str, source: Path, first: bool = False) -> dict[str, list[str]]:
    """Group ``.../<split>/<class>/<file>`` names (``/``-separated) by class, sorted (``first``:
    the first name of each class only); validate the class folders."""
    by_class: dict[str, list[str]] = {}
    for name in members:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] == split:
            by_class.setdefault(parts[-2], []).append(name)
    if not by_class:
        raise ValueError(f"{source} holds no images under {split}/<class>/ "
                         f"(expected {split}/airplane/*.jpg and so on).")
    unexpected = sorted(set(by_class) - set(CIFAR10_CLASSES))
    missing = sorted(set(CIFAR10_CLASSES) - set(by_class))
    if unexpected or missing:
        raise ValueError(f"{source}: class folders under {split}/ do not match CIFAR-10 "
                         f"(unexpected {unexpected}, missing {missing}).")
    return {k: sorted(v)[:1] if first else sorted(v) for k, v in by_class.items()}


def _decode_images(blobs: dict[str, list[bytes]], source: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        for blob in blobs[name]:
            try:
                pixels = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))
            except Exception as error:
                raise ValueError(f"{source}: an image of class {name} cannot be decoded ({error}).") from error
            image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
            if image.shape != (3, 32, 32):
                raise ValueError(f"{source}: an image of class {name} is {tuple(image.shape)}, not (3, 32, 32).")
            images.append(image)
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def _decode_batches(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's python batches. They are pickles: each file's md5 is checked against
    torchvision's published list first, so only the known files are ever unpickled."""
    import pickle

    images, labels = [], []
    for file in _batch_files(folder, split):
        with open(file, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")  # noqa: S301 — md5-verified by _batch_files
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def _batch_files(folder: Path, split: str) -> list[Path]:
    """torchvision's batch files of ``split`` in ``folder``, each checked against its published md5."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    files = []
    for name, md5 in CIFAR10.train_list if split == "train" else CIFAR10.test_list:
        file = folder / name
        if not check_integrity(str(file), md5):
            raise ValueError(f"{file} is missing or does not match torchvision's checksum (corrupt download?).")
        files.append(file)
    return files


def _write_cache(file: Path, dataset: ImageSet, fingerprint: str) -> None:
    from safetensors.torch import save_file

    from .files import atomic_path

    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(file) as tmp:
        save_file({"images": dataset.images.contiguous(), "labels": dataset.labels}, str(tmp),
                  metadata={"fingerprint": fingerprint})


def _read_cache(file: Path, fingerprint: str) -> ImageSet:
    from safetensors import safe_open

    try:
        with safe_open(str(file), "pt") as handle:
            stored = (handle.metadata() or {}).get("fingerprint")
            images, labels = handle.get_tensor("images"), handle.get_tensor("labels")
    except Exception as error:
        raise ValueError(f"Cache {file} is unreadable ({error}).") from error
    if stored != fingerprint:
        raise ValueError(f"Cache {file} does not match its source (the source changed since it was decoded).")
    if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise ValueError(f"Cache {file} holds malformed tensors.")
    return ImageSet(images, labels, torch.arange(len(labels)), list(CIFAR10_CLASSES))


def stratified_subset(dataset, n_per_class: int | None, seed: int = 0):
    """``n_per_class`` images of every class, drawn without replacement with ``seed``.

    ``dataset``: an :class:`ImageSet` or :class:`ImageFolderSet` (anything with
    ``labels`` and ``subset(positions)``). ``None`` returns the whole set. Order: by
    class, then by dataset index.
    """
    if n_per_class is None:
        return dataset
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}.")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in dataset.labels.unique().tolist():
        members = torch.nonzero(dataset.labels == label).flatten()
        if len(members) < n_per_class:
            raise ValueError(f"Class {label} has {len(members)} images, "
                             f"fewer than n_per_class={n_per_class}.")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n_per_class]].sort().values)
    return dataset.subset(torch.cat(chosen))


# ----------------------------------------------------------------------------- ImageNet

class ImageFolderSet:
    """An ImageNet-style tree ``<root>/<class>/*.jpg``, decoded batch by batch.

    Labels: the folder name as an integer where every folder is a number (the
    ImageNet-1k class index, as in the shared sample), else the sorted position.
    ``train=False``: shorter edge -> ``size`` (bilinear), centre crop ``size``;
    ``train=True``: random-resized crop ``size`` + horizontal flip.
    """

    def __init__(self, root: str | os.PathLike, size: int = 224, train: bool = False):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageNet folder {self.root} does not exist.")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        self.files = [(f, c) for c in folders for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise ValueError(f"ImageNet folder {self.root} holds no images in <class>/ sub-folders.")
        numeric = all(c.name.isdigit() for c in folders)
        self.label_of = {c: int(c.name) if numeric else i for i, c in enumerate(folders)}
        self.classes = [c.name for c in folders]
        self.size, self.train = size, train
        self.labels = torch.tensor([self.label_of[c] for _, c in self.files], dtype=torch.long)
        self.index = torch.arange(len(self.files))  # positions in the full folder: they key the noise

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, positions: torch.Tensor | np.ndarray) -> ImageFolderSet:
        """The images at ``positions`` (their dataset indices kept)."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        part = copy.copy(self)
        part.files = [self.files[i] for i in positions.tolist()]
        part.labels, part.index = self.labels[positions], self.index[positions]
        return part

    def fingerprint(self) -> str:
        """sha256 of the file list (relative paths, sizes, modification times), labels and preprocessing."""
        digest = hashlib.sha256(f"{self.size}:{self.train}".encode())
        for (file, _), label, index in zip(self.files, self.labels.tolist(), self.index.tolist(), strict=True):
            stat = file.stat()
            digest.update(f"{file.relative_to(self.root)}:{stat.st_size}:{stat.st_mtime_ns}:{label}:{index}\n".encode())
        return digest.hexdigest()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        from torchvision.transforms import v2

        file, folder = self.files[i]
        try:
            image = Image.open(io.BytesIO(file.read_bytes())).convert("RGB")
        except Exception as error:
            raise ValueError(f"{file} cannot be decoded as an image ({error}).") from error
        if self.train:
            ops = [v2.RandomResizedCrop(self.size, antialias=True), v2.RandomHorizontalFlip()]
        else:
            ops = [v2.Resize(self.size, interpolation=v2.InterpolationMode.BILINEAR, antialias=True),
                   v2.CenterCrop(self.size)]
        tensor = v2.Compose([v2.PILToTensor(), *ops])(image)
        return tensor, self.label_of[folder], int(self.index[i])

    def batches(self, batch_size: int, workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images (B, 3, size, size), labels, dataset indices) in order."""
        loader = torch.utils.data.DataLoader(self, batch_size=batch_size, num_workers=workers)
        for images, labels, index in loader:
            yield images, labels.long(), index.long()


def load_imagenet(split: str = "val", source: str | os.PathLike | None = None,
                  train: bool = False, size: int = 224) -> ImageFolderSet:
    """ImageNet ``split`` from ``source`` or ``$PARADOX_IMAGENET`` (a folder holding ``val/``)."""
    chosen = source if source is not None else os.environ.get("PARADOX_IMAGENET")
    if not chosen:
        raise FileNotFoundError("No ImageNet source: set PARADOX_IMAGENET to a folder holding "
                                "val/<class>/*.JPEG (and train/ for training).")
    root = Path(chosen)
    folder = root / split if (root / split).is_dir() else root
    return ImageFolderSet(folder, size=size, train=train)
