"""Multilayer perceptrons for 2-D data (ring, grid); they also flatten images of any shape.

The toy-data GAN of the unrolled-GAN / PacGAN line of work: fully connected layers with ReLU in
the generator and leaky ReLU in the discriminator. The generator's output is linear for
vector data (the grid spans [-4, 4]) and tanh for images (data in [-1, 1]).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from spectral_gan.models.common import activation as make_activation
from spectral_gan.models.common import initialize
from spectral_gan.norms import IDENTITY, NormHook


class MLPGenerator(nn.Module):
    def __init__(self, shape: Sequence[int], z_dim: int = 16, hidden: int = 128, depth: int = 3,
                 init: str = "default") -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.z_dim = z_dim
        layers: list[nn.Module] = []
        d = z_dim
        for _ in range(depth):
            layers += [initialize(nn.Linear(d, hidden), init), nn.ReLU(inplace=True)]
            d = hidden
        layers.append(initialize(nn.Linear(d, math.prod(self.shape)), init))
        if len(self.shape) > 1:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, shape: Sequence[int], hidden: int = 128, depth: int = 3,
                 norm: NormHook = IDENTITY, negative_slope: float = 0.2,
                 init: str = "default", activation: str = "leaky_relu") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = math.prod(int(s) for s in shape)
        for i in range(depth):
            layers.append(norm.wrap(initialize(nn.Linear(d, hidden), init), f"fc{i}"))
            if i > 0:
                layers.append(norm.feature_norm(hidden, dims=1))
            layers.append(make_activation(activation, negative_slope))
            d = hidden
        layers.append(norm.wrap(initialize(nn.Linear(d, 1), init), "out", output=True))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(1)

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """An upper bound on D's Lipschitz constant given each part's constant ``k(part)``
        (``spectral_gan.norms.lipschitz``): the layers run in series, so the constants multiply."""
        bound = torch.tensor(1.0)
        for part in self.net:
            bound = bound * k(part)
        return bound
