"""Datasets as decoded uint8 tensors, their splits and their preprocessing.

Images are decoded and resized once, kept in memory (and optionally in an on-disk cache), so no epoch ever
decodes a JPEG again. Scaling to floats happens per batch, which is cheap and keeps one cache per size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trainer.errors import ConfigError
from trainer.registry import Registry

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM_METADATA = "HAM10000_metadata.csv"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    path: str | None = None
    image_size: int | None = None  # None: the model's native size
    scaling: str = "native"  # native | imagenet | minus_one_to_one
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: int = 0  # fixed across trial seeds: every trial sees the same validation set
    cache_dir: str | None = None  # on-disk cache of decoded images
    options: dict = field(default_factory=dict)  # dataset-specific (e.g. synthetic: layout, n_images)


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, N x 3 x S x S
    labels: torch.Tensor  # int64, N
    classes: list[str]
    groups: np.ndarray | None = None  # samples sharing a group never land in two splits (HAM10000 lesions)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Splits:
    data: ImageSet
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def indices(self, split: str) -> np.ndarray:
        return {"train": self.train, "val": self.val, "test": self.test}[split]


Loader = Callable[[DataConfig, int], ImageSet]
DATASETS: Registry[Loader] = Registry("dataset")

# ---------------------------------------------------------------- decoding


def _decode(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def decode_images(paths: list[str], size: int) -> torch.Tensor:
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = min(8, (os.cpu_count() or 1) * 2)

    def one(i: int) -> None:
        out[i] = _decode(paths[i], size)

    with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
        list(pool.map(one, range(len(paths))))
    return torch.from_numpy(out)


def _require_dir(cfg: DataConfig) -> str:
    if not cfg.path:
        raise ConfigError(f"data.path: required for dataset {cfg.dataset!r}")
    if not os.path.isdir(cfg.path):
        raise ConfigError(f"data.path: {cfg.path} is not a directory")
    return cfg.path


# ---------------------------------------------------------------- datasets


@DATASETS.register("digits")
def load_digits(cfg: DataConfig, size: int) -> ImageSet:
    """scikit-learn's real 8x8 handwritten digits (1,797 images, 10 classes), embedded: no download."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) * (255.0 / 16.0))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    return ImageSet(x, torch.from_numpy(d.target.astype(np.int64)), [str(c) for c in range(10)])


@DATASETS.register("imagefolder")
def load_imagefolder(cfg: DataConfig, size: int) -> ImageSet:
    root = _require_dir(cfg)
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for label, cls in enumerate(classes):
        for name in sorted(os.listdir(os.path.join(root, cls))):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(root, cls, name))
                labels.append(label)
    if len(classes) < 2 or not paths:
        raise ConfigError(f"data.path: {root} needs one sub-directory of images per class (at least 2)")
    return ImageSet(decode_images(paths, size), torch.tensor(labels, dtype=torch.int64), classes)


@DATASETS.register("ham10000")
def load_ham10000(cfg: DataConfig, size: int) -> ImageSet:
    import pandas as pd

    root = _require_dir(cfg)
    meta_path = os.path.join(root, HAM_METADATA)
    if not os.path.exists(meta_path):
        raise ConfigError(f"data.path: {meta_path} not found (HAM10000 layout: metadata CSV + image folders)")
    meta = pd.read_csv(meta_path)
    missing = {"image_id", "lesion_id", "dx"} - set(meta.columns)
    if missing:
        raise ConfigError(f"{meta_path}: missing columns {sorted(missing)}")
    unknown = set(meta["dx"]) - set(HAM_CLASSES)
    if unknown:
        raise ConfigError(f"{meta_path}: unknown dx {sorted(unknown)}; valid: {', '.join(HAM_CLASSES)}")
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS:
                files[stem] = os.path.join(dirpath, name)
    absent = [i for i in meta["image_id"] if i not in files]
    if absent:
        raise ConfigError(f"data.path: {len(absent)} images of {HAM_METADATA} not found under {root}, e.g. {absent[0]}")
    labels = torch.tensor([HAM_CLASSES.index(d) for d in meta["dx"]], dtype=torch.int64)
    groups = pd.factorize(meta["lesion_id"])[0]
    images = decode_images([files[i] for i in meta["image_id"]], size)
    return ImageSet(images, labels, list(HAM_CLASSES), groups)


@DATASETS.register("synthetic")
def load_synthetic(cfg: DataConfig, size: int) -> ImageSet:
    """Generated on first use under data.path (HAM10000 layout by default), then read like the real thing."""
    return DATASETS.get(ensure_synthetic(cfg))(cfg, size)


def ensure_synthetic(cfg: DataConfig) -> str:
    from trainer.synthetic import LAYOUTS, write_synthetic

    if not cfg.path:
        raise ConfigError("data.path: required for dataset 'synthetic' (where to write it)")
    layout = cfg.options.get("layout", "ham10000")
    if layout not in LAYOUTS:
        raise ConfigError(f"data.options.layout: unknown {layout!r}; valid: {', '.join(LAYOUTS)}")
    write_synthetic(cfg.path, layout=layout, n_images=int(cfg.options.get("n_images", 210)))
    return layout


# ---------------------------------------------------------------- caching

_MEMORY: dict[str, ImageSet] = {}


def fingerprint(cfg: DataConfig, size: int) -> str:
    """Identity of the decoded images: dataset, options, size, and every file's name, size and mtime."""
    h = hashlib.sha256(repr((cfg.dataset, sorted(cfg.options.items()), size)).encode())
    if cfg.path and os.path.isdir(cfg.path):
        h.update(os.path.realpath(cfg.path).encode())
        for dirpath, _, names in sorted(os.walk(cfg.path)):
            for name in sorted(names):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def load_images(cfg: DataConfig, size: int) -> ImageSet:
    """Decoded images at ``size``, from memory, the on-disk cache, or the files (in that order)."""
    loader = DATASETS.get(cfg.dataset)
    if cfg.dataset == "synthetic":  # generate first, so the fingerprint sees the files
        ensure_synthetic(cfg)
    key = fingerprint(cfg, size)
    if key in _MEMORY:
        return _MEMORY[key]
    disk = os.path.join(cfg.cache_dir, f"{cfg.dataset}-{size}-{key}.pt") if cfg.cache_dir else None
    if disk and os.path.exists(disk):
        blob = torch.load(disk, weights_only=False)
        data = ImageSet(blob["images"], blob["labels"], blob["classes"], blob["groups"])
    else:
        data = loader(cfg, size)
        if disk:
            os.makedirs(cfg.cache_dir, exist_ok=True)
            tmp = f"{disk}.tmp{os.getpid()}"
            torch.save(vars(data), tmp)
            os.replace(tmp, disk)  # atomic: a reader never sees half a cache file
    _MEMORY[key] = data
    return data


def clear_memory_cache() -> None:
    _MEMORY.clear()


# ---------------------------------------------------------------- splits


def split_indices(
    labels: np.ndarray, groups: np.ndarray | None, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Stratified split, grouped: all samples of a group go to the same split.

    Per class, groups are shuffled (by ``seed``), taken largest first, and each goes to the split that is
    furthest below its target count for that class. Without groups, every sample is its own group.
    """
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    fractions_arr = np.asarray(fractions, dtype=np.float64)
    out: list[list[int]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        cls_groups = np.unique(groups[members])
        rng.shuffle(cls_groups)
        by_group = {g: members[groups[members] == g] for g in cls_groups}
        order = sorted(cls_groups, key=lambda g: -len(by_group[g]))  # stable: ties keep the shuffle
        target = fractions_arr * len(members)
        counts = np.zeros(len(fractions))
        for g in order:
            s = int(np.argmax(target - counts))
            out[s].extend(by_group[g].tolist())
            counts[s] += len(by_group[g])
    return [np.sort(np.asarray(ix, dtype=np.int64)) for ix in out]


def make_splits(data: ImageSet, cfg: DataConfig) -> Splits:
    if len(cfg.split) != 3 or abs(sum(cfg.split) - 1) > 1e-6 or min(cfg.split) <= 0:
        raise ConfigError(f"data.split: three positive fractions summing to 1, got {list(cfg.split)}")
    train, val, test = split_indices(data.labels.numpy(), data.groups, cfg.split, cfg.split_seed)
    return Splits(data, train, val, test)


# ---------------------------------------------------------------- preprocessing

SCALINGS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "minus_one_to_one": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


class Normalizer:
    """uint8 batch -> float batch, scaled as the model expects."""

    def __init__(self, scaling: str, device: torch.device | str = "cpu"):
        if scaling not in SCALINGS:
            raise ConfigError(f"data.scaling: unknown {scaling!r}; valid: native, {', '.join(SCALINGS)}")
        mean, std = SCALINGS[scaling]
        self.scale = (1.0 / (255.0 * torch.tensor(std))).view(1, 3, 1, 1).to(device)
        self.shift = (-torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self.scale + self.shift
