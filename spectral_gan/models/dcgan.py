"""The SN paper's standard CNN (Miyato et al., ICLR 2018, Table 3), for 32, 48 and 64 px.

Generator: z -> dense (M_g x M_g x 8ch) -> 3 x [4x4 stride-2 deconv, BN, ReLU] halving channels
-> 3x3 conv to image channels -> tanh, with M_g = size / 8 (4 for 32 px, 6 for STL's 48 px).
Discriminator: conv3x3 ch, conv4x4/2 ch, conv3x3 2ch, conv4x4/2 2ch, conv3x3 4ch, conv4x4/2 4ch,
conv3x3 8ch, each followed by leaky ReLU (slope 0.1), then dense -> 1. ``ch=64`` is the paper.

Class-conditional variants (``spectral_gan.models.conditional``): ``conditional=true`` puts
conditional batch norm (de Vries et al. 2017) in place of each of G's BatchNorms;
``conditional=projection`` adds the projection term of Miyato & Koyama (ICLR 2018) to D's logit,
with the class embedding as wide as the flattened features the dense layer reads.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from spectral_gan.models.common import activation as make_activation
from spectral_gan.models.common import image_shape, initialize
from spectral_gan.models.conditional import (batch_norm_2d, check_labels, discriminator_classes,
                                             generator_classes, logit, logit_constant,
                                             projection_head, run_layers)
from spectral_gan.norms import IDENTITY, NormHook

SIZES = (32, 48, 64)
# MSN's centring sites (norm.center=auto): after conv3, conv5 and conv6, the convolutions that end
# the second and third resolution stage and the last one, as the MSN authors' discriminator
# (AntixK/mean-spectral-norm, MSNGAN/model.py, _MSNnetD) places them; never the input layer.
MSN_CENTERS = (3, 5, 6)


class DCGANGenerator(nn.Module):
    """``conditional=True``: every BatchNorm is a ``ConditionalBatchNorm2d`` over ``num_classes``
    classes and ``forward`` needs labels y; otherwise ``num_classes`` is ignored (None) and y too."""

    def __init__(self, shape: Sequence[int], z_dim: int = 128, ch: int = 64,
                 init: str = "default", conditional: bool = False,
                 num_classes: int | None = None) -> None:
        super().__init__()
        channels, size = image_shape("dcgan", shape, SIZES)
        self.num_classes = generator_classes(conditional, num_classes)
        self.conditional = conditional
        self.z_dim = z_dim
        self.bottom = size // 8
        top = 8 * ch
        self.dense = initialize(nn.Linear(z_dim, self.bottom * self.bottom * top), init)
        layers: list[nn.Module] = [batch_norm_2d(top, self.num_classes), nn.ReLU(inplace=True)]
        c = top
        for _ in range(3):
            layers += [initialize(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), init),
                       batch_norm_2d(c // 2, self.num_classes), nn.ReLU(inplace=True)]
            c //= 2
        layers += [initialize(nn.Conv2d(c, channels, 3, 1, 1), init), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.top = top

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dense(z).view(z.shape[0], self.top, self.bottom, self.bottom)
        if not self.conditional:
            return self.net(h)
        return run_layers(self.net, h, check_labels(y, z.shape[0], "generator"))


class DCGANDiscriminator(nn.Module):
    """``conditional="projection"``: ``D(x, y) = dense(h) + <embed(y), h>`` with h the flattened
    features (Miyato & Koyama 2018), ``embed`` built through ``norm``; ``"none"``: y is ignored."""

    def __init__(self, shape: Sequence[int], ch: int = 64, norm: NormHook = IDENTITY,
                 negative_slope: float = 0.1, init: str = "default",
                 activation: str = "leaky_relu", conditional: str = "none",
                 num_classes: int | None = None) -> None:
        super().__init__()
        channels, size = image_shape("dcgan", shape, SIZES)
        self.num_classes = discriminator_classes(conditional, num_classes)
        self.conditional = conditional
        # (out channels, kernel, stride) as in the paper's Table 3(b).
        spec = [(ch, 3, 1), (ch, 4, 2), (2 * ch, 3, 1), (2 * ch, 4, 2),
                (4 * ch, 3, 1), (4 * ch, 4, 2), (8 * ch, 3, 1)]
        layers: list[nn.Module] = []
        c = channels
        for i, (out, k, s) in enumerate(spec):
            conv = initialize(nn.Conv2d(c, out, k, s, (k - 1) // 2), init)
            layers.append(norm.wrap(conv, f"conv{i}", center=i in MSN_CENTERS))
            if i > 0:  # feature norm after hidden convs, not the first (DCGAN, SN paper's BN)
                layers.append(norm.feature_norm(out, dims=2))
            layers.append(make_activation(activation, negative_slope))
            c = out
        self.features = nn.Sequential(*layers)
        features = c * (size // 8) ** 2
        self.head = norm.wrap(initialize(nn.Linear(features, 1), init), "dense", output=True)
        self.projection = projection_head(conditional, self.num_classes, features, norm, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return logit(self.head, self.projection, self.features(x).flatten(1), y, "discriminator")

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """An upper bound on D's Lipschitz constant given each part's constant ``k(part)``
        (``spectral_gan.norms.lipschitz``): the parts run in series, so their constants multiply;
        flattening is an isometry. A projection D's logit layer adds ``k(embed)`` (for any fixed
        label, ``conditional.logit_constant``)."""
        bound = logit_constant(k, self.head, self.projection)
        for part in self.features:
            bound = bound * k(part)
        return bound
