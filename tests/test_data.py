import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support

from trainer.data import (
    HAM_CLASSES,
    DataConfig,
    Normalizer,
    clear_memory_cache,
    load_images,
    make_splits,
    split_indices,
)
from trainer.errors import ConfigError
from trainer.metrics import classification_metrics
from trainer.synthetic import write_synthetic


@pytest.fixture(scope="module")
def ham(tmp_path_factory):
    return write_synthetic(str(tmp_path_factory.mktemp("data") / "ham"), "ham10000", n_images=280)


def test_synthetic_ham_layout_loads_with_lesion_groups(ham):
    data = load_images(DataConfig("ham10000", ham), 32)
    assert data.images.dtype == torch.uint8 and data.images.shape == (280, 3, 32, 32)
    assert data.classes == list(HAM_CLASSES)
    assert np.bincount(data.labels.numpy()).tolist() == [40] * 7
    assert len(np.unique(data.groups)) < len(data.groups)  # several images per lesion


def test_ham_split_is_stratified_and_never_leaks_a_lesion(ham):
    data = load_images(DataConfig("ham10000", ham), 32)
    splits = make_splits(data, DataConfig("ham10000", ham))
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 280 and len(set(np.concatenate([splits.train, splits.val, splits.test]))) == 280
    assert abs(sizes[0] / 280 - 0.6) < 0.05 and abs(sizes[1] / 280 - 0.2) < 0.05
    groups = [set(data.groups[ix]) for ix in (splits.train, splits.val, splits.test)]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    for ix in (splits.train, splits.val, splits.test):  # every class in every split, near its share
        counts = np.bincount(data.labels.numpy()[ix], minlength=7)
        assert counts.min() > 0 and counts.max() - counts.min() <= 2


def test_split_depends_only_on_the_split_seed():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    a = split_indices(labels, None, (0.6, 0.2, 0.2), seed=0)
    b = split_indices(labels, None, (0.6, 0.2, 0.2), seed=0)
    c = split_indices(labels, None, (0.6, 0.2, 0.2), seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])
    assert [np.bincount(labels[ix]).tolist() for ix in a] == [[30, 18, 12], [10, 6, 4], [10, 6, 4]]


def test_bad_split_and_paths_are_config_errors(tmp_path):
    data = load_images(DataConfig("digits"), 8)
    with pytest.raises(ConfigError, match="data.split"):
        make_splits(data, DataConfig(split=(0.5, 0.5, 0.5)))
    with pytest.raises(ConfigError, match="data.path: .* is not a directory"):
        load_images(DataConfig("ham10000", str(tmp_path / "missing")), 8)
    with pytest.raises(ConfigError, match="HAM10000_metadata.csv not found"):
        load_images(DataConfig("ham10000", str(tmp_path)), 8)


def test_imagefolder_layout_and_the_on_disk_decode_cache(tmp_path):
    root = write_synthetic(str(tmp_path / "folder"), "imagefolder", n_images=40)
    cache = tmp_path / "cache"
    cfg = DataConfig("imagefolder", root, cache_dir=str(cache))
    first = load_images(cfg, 24)
    assert first.classes == ["benign", "malignant"] and len(first) == 40
    assert len(list(cache.glob("*.pt"))) == 1
    clear_memory_cache()
    second = load_images(cfg, 24)  # from the cache file, not the JPEGs
    assert torch.equal(first.images, second.images) and second is not first
    assert len(list(cache.glob("*.pt"))) == 1
    load_images(cfg, 16)  # another size is another cache entry
    assert len(list(cache.glob("*.pt"))) == 2


def test_digits_is_real_and_scaled_to_the_requested_size():
    data = load_images(DataConfig("digits"), 32)
    assert data.images.shape == (1797, 3, 32, 32) and len(data.classes) == 10
    assert data.images.max() == 255 and data.images.min() == 0


def test_normalizer_scalings():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    out = Normalizer("minus_one_to_one")(x)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(-1.0)) and torch.allclose(out[0, :, 0, 1], torch.tensor(1.0))
    imagenet = Normalizer("imagenet")(x)
    assert torch.allclose(imagenet[0, 0, 0, 0], torch.tensor(-0.485 / 0.229), atol=1e-6)
    with pytest.raises(ConfigError, match="data.scaling"):
        Normalizer("zero_one")


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    preds[preds == 3] = 2  # class 3 never predicted: zero-division path
    m = classification_metrics(labels, preds, ["a", "b", "c", "d"], loss=0.5)
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=range(4), zero_division=0)
    assert np.allclose([c["precision"] for c in m["per_class"]], p)
    assert np.allclose([c["recall"] for c in m["per_class"]], r)
    assert np.allclose([c["f1"] for c in m["per_class"]], f)
    assert [c["support"] for c in m["per_class"]] == s.tolist()
    assert m["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(labels, preds, average="weighted", zero_division=0))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, preds))
    assert m["accuracy"] == pytest.approx((labels == preds).mean())
    assert np.array(m["confusion"]).sum() == 200


def test_concurrent_synthetic_writers_publish_one_complete_dataset(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    target = str(tmp_path / "shared")
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: write_synthetic(target, "ham10000", n_images=28), range(4)))
    assert paths == [target] * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]  # no temporary directory left behind
    assert len(load_images(DataConfig("ham10000", target), 8)) == 28
