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
