"""Multilayer perceptrons for 2-D data (ring, grid); they also flatten images of any shape.

The toy-data GAN of the unrolled-GAN / PacGAN line of work: fully connected layers with ReLU in
the generator and leaky ReLU in the discriminator. The generator's output is linear for
vector data (the grid spans [-4, 4]) and tanh for images (data in [-1, 1]).

The discriminator may be a projection discriminator (Miyato & Koyama, ICLR 2018;
``spectral_gan.models.conditional``), on the last hidden layer's output; the generator has no
class-conditional variant (conditional batch norm is built for the image generators).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from spectral_gan.models.common import activation as make_activation
from spectral_gan.errors import ConfigError
from spectral_gan.models.common import MAXOUT, Maxout, initialize
from spectral_gan.models.conditional import (CONDITIONAL_G_MODELS, check_conditional_g,
                                             discriminator_classes, logit, logit_constant,
                                             projection_head)
from spectral_gan.models.pack import pack_samples
from spectral_gan.norms import IDENTITY, NormHook


class MLPGenerator(nn.Module):
    def __init__(self, shape: Sequence[int], z_dim: int = 16, hidden: int = 128, depth: int = 3,
                 init: str = "default", batch_norm: bool = False, bn_momentum: float = 0.1,
                 conditional: bool = False, num_classes: int | None = None) -> None:
        """``batch_norm``: BatchNorm1d between each hidden layer and its ReLU, the hidden layers
        then without bias (PacGAN's 2-D generator, fjxmlzn/PacGAN ``2DGrid_GAN&PacGAN/
        pacgan_task.py``, whose population statistics move by 0.05 per update:
        ``bn_momentum=0.05``). Samples are drawn in eval mode, with those running statistics.

        ``conditional=True`` is refused (a ConfigError): this generator is unconditional, and
        ``num_classes`` and the labels ``forward`` accepts are ignored."""
        super().__init__()
        if check_conditional_g(conditional):
            raise ConfigError(f"generator=mlp has no class-conditional variant: only "
                              f"generator={CONDITIONAL_G_MODELS} are class-conditional; set "
                              f"generator.conditional=false or pick one of those")
        self.conditional, self.num_classes = False, None
        self.shape = tuple(int(s) for s in shape)
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        d = z_dim
        for _ in range(depth):
            if batch_norm:
                layers += [initialize(nn.Linear(d, hidden, bias=False), init),
                           nn.BatchNorm1d(hidden, momentum=bn_momentum), nn.ReLU(inplace=True)]
            else:
                layers += [initialize(nn.Linear(d, hidden), init), nn.ReLU(inplace=True)]
            d = hidden
        layers.append(initialize(nn.Linear(d, math.prod(self.shape)), init))
        if len(self.shape) > 1:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    """``activation=maxout``: each hidden layer is a maxout layer (a Linear layer with
    ``maxout_pieces`` outputs per unit, then the max over each unit's pieces; the norm wraps
    that Linear layer, a feature norm comes before the max), as PacGAN's 2-D discriminator.

    ``pack=m``: PacGAN's packing (``spectral_gan.models.pack``): the input layer takes m samples
    concatenated, a batch of B samples (B a multiple of m) gives B/m logits, one per tuple of
    consecutive samples.

    ``conditional="projection"``: ``D(x, y) = out(h) + <embed(y), h>`` with h the last hidden
    layer's output (Miyato & Koyama 2018), ``embed`` built through ``norm``; not with packing,
    whose tuples would mix samples of different classes. ``"none"``: y is ignored.
    """

    def __init__(self, shape: Sequence[int], hidden: int = 128, depth: int = 3,
                 norm: NormHook = IDENTITY, negative_slope: float = 0.2,
                 init: str = "default", activation: str = "leaky_relu",
                 maxout_pieces: int = 5, pack: int = 1, conditional: str = "none",
                 num_classes: int | None = None) -> None:
        super().__init__()
        if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
            raise ConfigError(f"discriminator.pack must be a positive integer, got {pack!r}")
        self.num_classes = discriminator_classes(conditional, num_classes)
        self.conditional = conditional
        if conditional != "none" and pack > 1:
            raise ConfigError(
                f"discriminator.conditional={conditional} judges each sample with its own label, "
                f"but discriminator.pack={pack} concatenates {pack} samples (of different "
                f"classes) into one input: set discriminator.pack=1 or discriminator.conditional=none")
        self.pack = pack
        maxout = activation == MAXOUT
        width = hidden * maxout_pieces if maxout else hidden
        layers: list[nn.Module] = []
        d = pack * math.prod(int(s) for s in shape)
        for i in range(depth):
            # MSN (norm.center=auto) centres every hidden layer but the input layer fc0, whose
            # centring would hide a shift of the whole batch from D (the authors never centre it).
            layers.append(norm.wrap(initialize(nn.Linear(d, width), init), f"fc{i}", center=i > 0))
            if i > 0:
                layers.append(norm.feature_norm(width, dims=1))
            layers.append(Maxout(maxout_pieces) if maxout else make_activation(activation, negative_slope))
            d = hidden
        layers.append(norm.wrap(initialize(nn.Linear(d, 1), init), "out", output=True))
        self.net = nn.Sequential(*layers)
        self.projection = projection_head(conditional, self.num_classes, d, norm, init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_packed(pack_samples(x, self.pack), y)

    def forward_packed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D on inputs already packed (B/m, m * features): what gradient penalties differentiate.
        ``y``: the labels of a projection D (which never packs)."""
        if self.projection is None:
            return self.net(x.flatten(1)).squeeze(1)
        h = x.flatten(1)
        for part in self.net[:-1]:
            h = part(h)
        return logit(self.net[-1], self.projection, h, y, "discriminator")

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """An upper bound on D's Lipschitz constant given each part's constant ``k(part)``
        (``spectral_gan.norms.lipschitz``): the layers run in series, so the constants multiply.
        A projection D's logit layer adds ``k(embed)`` (``conditional.logit_constant``)."""
        bound = torch.tensor(1.0)
        for part in self.net[:-1]:
            bound = bound * k(part)
        return bound * logit_constant(k, self.net[-1], self.projection)
