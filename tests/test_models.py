import pytest
import torch
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.models import (DCGANDiscriminator, DCGANGenerator, MLPDiscriminator,
                                 MLPGenerator, ResNetDiscriminator, ResNetGenerator)
from spectral_gan.norms import NormHook, SpectralNorm

PAIRS = [(DCGANGenerator, DCGANDiscriminator), (ResNetGenerator, ResNetDiscriminator)]


@pytest.mark.parametrize("size", [32, 48, 64])
@pytest.mark.parametrize("G,D", PAIRS)
def test_image_models_build_each_size(G, D, size):
    g = G((3, size, size), ch=8)
    d = D((3, size, size), ch=8, norm=NormHook("sn"))
    x = g(torch.randn(2, g.z_dim))
    assert x.shape == (2, 3, size, size)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (2,)


def test_paper_sizes_of_the_standard_cnn():
    # SN paper CNN at 32 px: 3.8M generator and 2.9M discriminator parameters (StudioGAN's build)
    g, d = DCGANGenerator((3, 32, 32)), DCGANDiscriminator((3, 32, 32))
    assert sum(p.numel() for p in g.parameters()) == pytest.approx(3.81e6, rel=0.01)
    assert sum(p.numel() for p in d.parameters()) == pytest.approx(2.94e6, rel=0.01)
    assert sum(p.numel() for p in ResNetDiscriminator((3, 32, 32)).parameters()) == pytest.approx(1.05e6, rel=0.01)


@pytest.mark.parametrize("G,D", PAIRS)
def test_unsupported_size_names_supported_sizes(G, D):
    with pytest.raises(ConfigError, match="32, 48, 64 px"):
        G((3, 40, 40))
    with pytest.raises(ConfigError, match="generator=mlp"):
        D((2,))


def test_every_discriminator_weight_layer_goes_through_the_hook():
    for D, shape in [(DCGANDiscriminator, (1, 32, 32)), (ResNetDiscriminator, (1, 32, 32)),
                     (MLPDiscriminator, (2,))]:
        d = D(shape, norm=NormHook("sn")) if D is MLPDiscriminator else D(shape, ch=8, norm=NormHook("sn"))
        weight_layers = [m for m in d.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        assert weight_layers and all(
            isinstance(m.parametrizations.weight[0], SpectralNorm) for m in weight_layers), D


def test_batch_norm_after_hidden_layers_only():
    d = DCGANDiscriminator((3, 32, 32), ch=8, norm=NormHook(feature="batch"))
    bns = [m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6  # 7 convs, none after the first, none after the dense head
    assert not isinstance(d.features[1], nn.BatchNorm2d)
    mlp = MLPDiscriminator((2,), depth=3, norm=NormHook(feature="batch"))
    assert sum(isinstance(m, nn.BatchNorm1d) for m in mlp.modules()) == 2


def test_mlp_shapes_for_points_and_images():
    g = MLPGenerator((2,))
    assert g(torch.randn(5, g.z_dim)).shape == (5, 2)
    g = MLPGenerator((1, 8, 8))
    x = g(torch.randn(5, g.z_dim))
    assert x.shape == (5, 1, 8, 8) and x.abs().max() <= 1
    assert MLPDiscriminator((1, 8, 8))(x).shape == (5,)
