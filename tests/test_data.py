import pytest
import torch
from PIL import Image

from spectral_gan.data import (DigitsDataModule, GridDataModule, ImageFolderDataModule,
                               MNIST5kDataModule, RingDataModule, TensorBatches,
                               TorchvisionDataModule)
from spectral_gan.data.transforms import to_size
from spectral_gan.errors import ConfigError, DatasetNotFoundError


def test_mnist5k_is_the_real_embedded_digits():
    dm = MNIST5kDataModule(batch_size=16, batches_per_step=2)
    images = dm.images
    assert images.shape == (5000, 1, 32, 32)
    assert images.min() == -1 and images.max() == 1
    assert (images[:, :, :2, :] == -1).all()  # 28 px padded: the border is background
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (32, 1, 32, 32)


def test_digits_upsampled():
    dm = DigitsDataModule(batch_size=8, image_size=32)
    assert dm.images.shape == (1797, 1, 32, 32)
    assert -1 <= dm.images.min() < dm.images.max() <= 1


def test_tensor_batches_cover_each_epoch_without_replacement():
    data = torch.arange(10).float()
    it = iter(TensorBatches(data, batch_size=5, seed=0))
    seen = torch.cat([next(it), next(it)])
    assert sorted(seen.tolist()) == list(range(10))
    with pytest.raises(ConfigError, match="lower batch_size or n_dis"):
        TensorBatches(data, batch_size=11)


@pytest.mark.parametrize("dm,n_modes,std", [(RingDataModule, 8, 0.01), (GridDataModule, 25, 0.05)])
def test_mixtures_sample_near_their_modes(dm, n_modes, std):
    d = dm(batch_size=4000)
    assert d.modes.shape == (n_modes, 2) and d.shape == (2,)
    x = next(iter(d.train_dataloader()))
    nearest = torch.cdist(x, d.modes).min(dim=1)
    assert (nearest.values < 5 * std).float().mean() > 0.99
    counts = torch.bincount(nearest.indices, minlength=n_modes)
    assert counts.min() > 4000 / n_modes * 0.6  # every mode gets its share


def test_ring_modes_on_unit_circle():
    modes = RingDataModule().modes
    torch.testing.assert_close(modes.norm(dim=1), torch.ones(8))


def test_pad_and_resize():
    x = torch.zeros(2, 1, 28, 28)
    padded = to_size(x, 32, "pad")
    assert padded.shape == (2, 1, 32, 32) and padded[0, 0, 0, 0] == -1 and padded[0, 0, 2, 2] == 0
    assert to_size(x, 64, "resize").shape == (2, 1, 64, 64)


def test_missing_torchvision_dataset_names_folder_and_files(tmp_path):
    dm = TorchvisionDataModule("cifar10", root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError) as err:
        dm.check_available()
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "data_batch_1" in msg and "data.download=true" in msg
    dm = TorchvisionDataModule("mnist", root=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="MNIST/raw.*train-images-idx3-ubyte"):
        dm.check_available()


def test_image_folder(tmp_path):
    for i in range(6):
        Image.new("RGB", (40, 30), color=(40 * i, 10, 200)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=16, batch_size=3, batches_per_step=2)
    dm.check_available()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (6, 3, 16, 16) and -1 <= batch.min() and batch.max() <= 1


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ImageFolderDataModule(root=str(tmp_path / "nope")).check_available()
    with pytest.raises(DatasetNotFoundError, match="holds 0 images"):
        ImageFolderDataModule(root=str(tmp_path)).check_available()


def test_synthetic_images_have_the_asked_shape_and_range_and_follow_the_seed():
    from spectral_gan.data import SyntheticImages

    dm = SyntheticImages(channels=3, image_size=48, num_samples=100, batch_size=10, seed=1)
    assert dm.shape == (3, 48, 48) and dm.images.shape == (100, 3, 48, 48)
    assert -1 <= dm.images.min() < dm.images.max() <= 1
    torch.testing.assert_close(dm.images, SyntheticImages(num_samples=100, image_size=48, seed=1).images)
    assert next(iter(dm.train_dataloader())).shape == (10, 3, 48, 48)
    with pytest.raises(ConfigError, match="channels >= 1"):
        SyntheticImages(channels=0)


@pytest.mark.parametrize("on_device,max_mb,moved", [("auto", 1024, True), ("auto", 0.1, False),
                                                   (True, 0.1, True), (False, 1024, False)])
def test_small_in_memory_datasets_move_to_the_accelerator_once(on_device, max_mb, moved):
    from spectral_gan.data import SyntheticImages

    # "meta" stands in for an accelerator here: no GPU in CI, and no data is copied.
    dm = SyntheticImages(num_samples=64, batch_size=8, on_device=on_device, on_device_max_mb=max_mb)
    assert dm.place(torch.device("cpu")) is False
    assert dm.place(torch.device("meta")) is moved
    batch = next(iter(dm.train_dataloader()))
    assert batch.device.type == ("meta" if moved else "cpu") and batch.shape == (8, 3, 32, 32)


def test_on_device_rejects_other_values():
    from spectral_gan.data import SyntheticImages

    with pytest.raises(ConfigError, match="data.on_device must be auto, true or false"):
        SyntheticImages(on_device="gpu")


# -- reference images: the public side of the evaluation (issue #18) ---------------------------
def _cat(batches) -> torch.Tensor:
    return torch.cat(list(batches))


def test_embedded_reference_images_are_a_fixed_subset_in_batches():
    from spectral_gan.data.batches import reference_indices

    dm = MNIST5kDataModule()
    batches = list(dm.reference_images("train", 130, batch_size=50))
    assert [len(b) for b in batches] == [50, 50, 30]
    torch.testing.assert_close(torch.cat(batches), dm.images[reference_indices(5000, 130)])
    assert len(_cat(dm.reference_images("train", 10_000))) == 5000  # all of them, no more
    with pytest.raises(ConfigError, match="'test' is not a split of data=mnist5k; valid: train"):
        dm.reference_images("test", 10)


@pytest.mark.parametrize("dm", [RingDataModule, GridDataModule])
def test_toy_reference_points_come_from_the_mixture_and_repeat(dm):
    d = dm(seed=3)
    points = _cat(d.reference_images("train", 600, batch_size=250))
    assert points.shape == (600, 2)
    assert (torch.cdist(points, d.modes).min(dim=1).values < 5 * d.std).float().mean() > 0.99
    torch.testing.assert_close(points, _cat(d.reference_images("train", 600)))  # same each call
    with pytest.raises(ConfigError, match="valid: train"):
        d.reference_images("test", 10)


def test_image_folder_reference_images_are_a_fixed_subset_of_sorted_paths(tmp_path):
    from spectral_gan.data.batches import reference_indices

    for i in range(5):
        Image.new("L", (8, 8), color=50 * i).save(tmp_path / f"img{i}.png")
    dm = ImageFolderDataModule(root=str(tmp_path), image_size=8, channels=1, batch_size=2)
    images = _cat(dm.reference_images("train", 4, batch_size=3))
    assert images.shape == (4, 1, 8, 8)
    assert images[:, 0, 0, 0].tolist() == pytest.approx(
        [50 * i / 127.5 - 1 for i in reference_indices(5, 4).tolist()])
    every = _cat(dm.reference_images("train", 5))  # the whole folder: all, in sorted path order
    assert every[:, 0, 0, 0].tolist() == pytest.approx([50 * i / 127.5 - 1 for i in range(5)])


def test_torchvision_reference_images_open_the_asked_split(monkeypatch):
    """The training split is the loaded one; another is opened for the call, same transform."""
    opened = []

    def construct(self, split):
        opened.append(split)
        value = 0.0 if split == "train" else 1.0
        return [(torch.full((3, 4, 4), value + i / 10), i % 10) for i in range(7)]

    monkeypatch.setattr(TorchvisionDataModule, "_construct", construct)
    dm = TorchvisionDataModule("cifar10", image_size=4)
    test = _cat(dm.reference_images("test", 7, batch_size=2))  # n = the split's size: all, in order
    train = _cat(dm.reference_images("train", 7, batch_size=2))
    assert test[:, 0, 0, 0].tolist() == pytest.approx([1.0 + i / 10 for i in range(7)])
    assert train[:, 0, 0, 0].tolist() == pytest.approx([i / 10 for i in range(7)])
    assert opened == ["test", "train"]
    with pytest.raises(ConfigError, match="valid: train, test, unlabeled, train\\+unlabeled"):
        TorchvisionDataModule("stl10").reference_images("valid", 5)


def test_reference_side_is_a_fixed_random_subset_covering_every_class():
    """mnist5k's file is sorted by digit: the first 2,000 images are 0-3 only, and real digits of
    all classes scored classifier FID ~385 against them. The reference is now a fixed seeded
    subset: all ten digits, the same images on every call, and real held-out digits close to it."""
    import torch

    from spectral_gan.data.batches import reference_indices
    from spectral_gan.data.embedded import MNIST5kDataModule
    from spectral_gan.evaluation import Evaluator
    from spectral_gan.metrics.classifier import heldout_split, load_classifier
    from devtools.digit_quality import class_fractions

    dm = MNIST5kDataModule()
    dm.setup("fit")
    ref = torch.cat(list(dm.reference_images("train", 2000)))
    assert torch.equal(ref, torch.cat(list(dm.reference_images("train", 2000))))
    assert torch.equal(reference_indices(10, 20), torch.arange(10))  # small sets: all, in order
    fractions = class_fractions(load_classifier("mnist5k"), ref)
    assert min(fractions) > 0.07, fractions
    held, _ = heldout_split(len(dm.images))
    evaluator = Evaluator.from_config(dm, {"num_samples": 1000, "batch_size": 250,
                                           "classifier": True, "cache_dir": None})
    batches = iter(dm.images[held].split(250))
    fid = evaluator.evaluate(lambda _: next(batches), torch.device("cpu"))["metrics/fid_classifier"]
    assert fid < 60, fid  # was ~385 against the first images (digits 0-3)


# -- a torchvision dataset is one row of TORCHVISION_SETS and one config ---------------------------

FAKE_YAML = """\
# A user's torchvision dataset: torchvision's FakeData (generated images, nothing to download).
_target_: spectral_gan.data.TorchvisionDataModule
name: fake
root: ${paths.data_root}
split: train
image_size: 32
download: false
num_workers: 0
batch_size: ${batch_size}
batches_per_step: ${n_dis}
seed: ${seed}
"""


def test_a_torchvision_dataset_is_one_row_and_one_config_and_is_trained_logged_compared(
        cfg_factory, tmp_path, monkeypatch, capsys):
    import csv

    import torchvision.datasets as tvd

    from spectral_gan.cli.compare import main as compare
    from spectral_gan.data.torchvision_sets import TORCHVISION_SETS, TorchvisionSet
    from spectral_gan.training.run import train
    from tests.test_train import scalars

    row = TorchvisionSet(3, ("train", "test"), (),
                         lambda split, **kw: tvd.FakeData(size=64, image_size=(3, 32, 32),
                                                          transform=kw["transform"],
                                                          random_offset=64 * (split == "test")),
                         lambda root: (root, ["nothing: FakeData generates its images"]))
    monkeypatch.setitem(TORCHVISION_SETS, "fake", row)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "fake.yaml").write_text(FAKE_YAML)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        cfg = cfg_factory(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "data=fake",
                          "batch_size=8", "generator.ch=8", "discriminator.ch=8", "steps=2",
                          f"seed={seed}", run_dir=runs / f"seed{seed}")
        result = train(cfg)
        assert result["gen_step"] == 2
        logged = scalars(str(runs / f"seed{seed}"))
        assert [s for s, _ in logged["loss/d"]] == [1, 2]
    with pytest.raises(ValueError, match="valid: cifar10, stl10, mnist, fashion_mnist, celeba, fake"):
        TorchvisionDataModule("nope")
    assert compare([str(runs)]) == 0
    with open(runs / "comparison.csv") as f:
        compared = list(csv.DictReader(f))
    assert len(compared) == 1 and int(compared[0]["seeds"]) == 2 and int(compared[0]["last_step"]) == 2
