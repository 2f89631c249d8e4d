"""LightningDataModules yielding real samples in [-1, 1], one per data source."""
from spectral_gan.data.base import GANDataModule
from spectral_gan.data.batches import TensorBatches
from spectral_gan.data.in_memory import InMemoryImages
from spectral_gan.data.embedded import DigitsDataModule, MNIST5kDataModule
from spectral_gan.data.image_folder import ImageFolderDataModule
from spectral_gan.data.synthetic import SyntheticImages
from spectral_gan.data.torchvision_sets import TorchvisionDataModule
from spectral_gan.data.toy2d import GaussianMixtureDataModule, GridDataModule, RingDataModule

__all__ = ["DigitsDataModule", "GANDataModule", "GaussianMixtureDataModule", "GridDataModule",
           "ImageFolderDataModule", "InMemoryImages", "MNIST5kDataModule", "RingDataModule",
           "SyntheticImages", "TensorBatches", "TorchvisionDataModule"]
