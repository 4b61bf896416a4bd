"""Small synthetic datasets in the HAM10000 or ImageFolder layout, with a signal a CNN can learn.

Each class has its own colour and blob size; images of one lesion share a position and jitter around it,
so a grouped split matters exactly as it does on the real data.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from trainer.data import HAM_CLASSES, HAM_METADATA

LAYOUTS = ("ham10000", "imagefolder")
_DONE = ".complete"


def _palette(n: int) -> np.ndarray:
    hues = np.linspace(0, 1, n, endpoint=False)
    return np.stack([0.5 + 0.4 * np.cos(2 * np.pi * (hues + k / 3)) for k in range(3)], axis=1) * 255


def _image(rng: np.random.Generator, colour: np.ndarray, radius: float, centre, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx = np.asarray(centre) + rng.normal(0, 1.5, 2)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < (radius * rng.uniform(0.9, 1.1)) ** 2
    skin = np.array([200.0, 160.0, 140.0]) + rng.normal(0, 8, 3)
    img = np.where(mask[..., None], colour, skin) + rng.normal(0, 12, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write_synthetic(
    path: str, layout: str = "ham10000", n_images: int = 210, size: int = 64, seed: int = 0, classes=None
) -> str:
    """Write the dataset under ``path`` unless a complete one is already there; returns ``path``."""
    from PIL import Image

    if os.path.exists(os.path.join(path, _DONE)):
        return path
    classes = list(classes or (HAM_CLASSES if layout == "ham10000" else ("benign", "malignant")))
    rng = np.random.default_rng(seed)
    colours = _palette(len(classes))
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path.rstrip('/'))}.tmp")
    rows = []
    for i in range(n_images):
        c = i % len(classes)
        lesion = i // (2 * len(classes))  # two images per lesion on average
        lesion_rng = np.random.default_rng([seed, c, lesion])
        centre = lesion_rng.uniform(size * 0.3, size * 0.7, 2)
        radius = size * (0.12 + 0.2 * c / max(1, len(classes) - 1))
        img = _image(rng, colours[c], radius, centre, size)
        if layout == "ham10000":
            image_id = f"ISIC_{i:07d}"
            folder = os.path.join(tmp, "HAM10000_images_part_1" if i % 2 == 0 else "HAM10000_images_part_2")
            rows.append((f"HAM_{c}_{lesion:05d}", image_id, classes[c]))
        else:
            image_id = f"img_{i:05d}"
            folder = os.path.join(tmp, classes[c])
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(img).save(os.path.join(folder, f"{image_id}.jpg"), quality=92)
    if layout == "ham10000":
        with open(os.path.join(tmp, HAM_METADATA), "w") as f:
            f.write("lesion_id,image_id,dx,dx_type,age,sex,localization\n")
            for lesion_id, image_id, dx in rows:
                f.write(f"{lesion_id},{image_id},{dx},histo,50.0,male,back\n")
    open(os.path.join(tmp, _DONE), "w").close()
    try:
        os.rename(tmp, path)  # atomic publish: concurrent writers race here, and exactly one wins
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(path, _DONE)):
            from trainer.errors import ConfigError

            raise ConfigError(
                f"data.path: {path} exists and is not a synthetic dataset; choose an empty path"
            ) from None
    return path
