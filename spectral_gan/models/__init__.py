"""Generators and discriminators. Discriminators build their weight layers through a NormHook."""
from spectral_gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from spectral_gan.models.mlp import MLPDiscriminator, MLPGenerator
from spectral_gan.models.resnet import ResNetDiscriminator, ResNetGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator",
           "ResNetDiscriminator", "ResNetGenerator"]
