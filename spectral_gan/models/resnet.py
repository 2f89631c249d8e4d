"""SNGAN ResNet generator and discriminator (Miyato et al., ICLR 2018, Appendix B, Table 4).

Sizes and channel schedules (``ch=None`` takes the paper's width):
- 32 px (CIFAR-10): G dense 4x4x256, 3 up-blocks of 256; D 2 down-blocks and 2 blocks of 128.
- 48 px (STL-10): G dense 6x6x512, up-blocks 256, 128, 64; D down-blocks 64, 128, 256, 512,
  then a block of 1024.
- 64 px: G dense 4x4x1024, up-blocks 512, 256, 128, 64; D down-blocks 64 ... 1024.
G block: BN, ReLU, nearest 2x upsample, conv3x3, BN, ReLU, conv3x3; shortcut upsample, conv1x1.
D block: ReLU, conv3x3, ReLU, conv3x3, avgpool; shortcut conv1x1, avgpool. The first D block is
the "optimized" one (conv, ReLU, conv, pool; shortcut pool, conv1x1). D ends with ReLU, global
sum pooling and a dense layer.

Class-conditional variants (``spectral_gan.models.conditional``), as SNGAN-projection's code
(Miyato & Koyama, ICLR 2018; pfnet-research/sngan_projection ``gen_models/resnet_32.py``,
``dis_models/snresnet_32.py``): ``conditional=true`` makes bn1/bn2 of every G block conditional
batch norms (de Vries et al. 2017) while G's final BatchNorm stays a plain one (their ``b5``);
D's ``conditional=projection`` adds ``<embed(y), h>`` on the pooled features h to the dense
layer's logit.

As the authors' code (defaults): G's batch norms use eps 2e-5 (chainer's default, ``bn_eps``);
D's dense layer has no bias (their ``l5 = SNLinear(ch, 1, nobias=True)``, ``head_bias``);
``init=sngan`` gives their Glorot initialization (gain sqrt(2) on residual convolutions).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.models.common import activation as make_activation
from spectral_gan.models.common import image_shape, initialize
from spectral_gan.models.conditional import (batch_norm, batch_norm_2d, check_labels,
                                             discriminator_classes, generator_classes, logit,
                                             logit_constant, projection_head, run_layers)
from spectral_gan.norms import IDENTITY, NormHook
from spectral_gan.norms.lipschitz import AVG_POOL_2X2, sum_pool_constant

SIZES = (32, 48, 64)
# size -> (default ch, bottom resolution, block output channels as multiples of ch)
G_SCHEDULE = {32: (256, 4, [1, 1, 1, 1]), 48: (64, 6, [8, 4, 2, 1]), 64: (64, 4, [16, 8, 4, 2, 1])}
# size -> (default ch, block output channels as multiples of ch, downsample flags)
D_SCHEDULE = {32: (128, [1, 1, 1, 1], [True, True, False, False]),
              48: (64, [1, 2, 4, 8, 16], [True, True, True, True, False]),
              64: (64, [1, 2, 4, 8, 16], [True, True, True, True, True])}


class GBlock(nn.Module):
    """``num_classes``: bn1 and bn2 are conditional batch norms over that many classes."""

    def __init__(self, cin: int, cout: int, init: str, num_classes: int | None = None,
                 bn_eps: float = 2e-5) -> None:
        super().__init__()
        self.bn1 = batch_norm_2d(cin, num_classes, bn_eps)
        self.bn2 = batch_norm_2d(cout, num_classes, bn_eps)
        self.conv1 = initialize(nn.Conv2d(cin, cout, 3, 1, 1), init, residual=True)
        self.conv2 = initialize(nn.Conv2d(cout, cout, 3, 1, 1), init, residual=True)
        self.shortcut = initialize(nn.Conv2d(cin, cout, 1), init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.interpolate(F.relu(batch_norm(self.bn1, x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(batch_norm(self.bn2, self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResNetGenerator(nn.Module):
    """``conditional=True``: SNGAN's conditional generator, labels y required by ``forward``;
    otherwise ``num_classes`` is ignored (None) and y too."""

    def __init__(self, shape: Sequence[int], z_dim: int = 128, ch: int | None = None,
                 init: str = "default", conditional: bool = False,
                 num_classes: int | None = None, bn_eps: float = 2e-5,
                 last_bn: str = "plain") -> None:
        """``last_bn``: the BatchNorm before the output conv, ``plain`` (the authors': one
        BatchNorm for every class) or ``conditional`` (per class, as before 2026-12: what
        checkpoints of earlier conditional runs hold). ``bn_eps``: every BatchNorm's eps."""
        super().__init__()
        channels, size = image_shape("resnet", shape, SIZES)
        self.num_classes = generator_classes(conditional, num_classes)
        self.conditional = conditional
        default_ch, self.bottom, mults = G_SCHEDULE[size]
        ch = ch or default_ch
        widths = [m * ch for m in mults]
        self.z_dim = z_dim
        self.top = widths[0]
        self.dense = initialize(nn.Linear(z_dim, self.bottom * self.bottom * self.top), init)
        if last_bn not in ("plain", "conditional"):
            raise ConfigError(f"generator.last_bn={last_bn!r}: choose plain (the authors') or "
                              f"conditional")
        self.blocks = nn.Sequential(*(GBlock(a, b, init, self.num_classes, bn_eps)
                                      for a, b in zip(widths[:-1], widths[1:])))
        last_classes = self.num_classes if last_bn == "conditional" else None
        self.out = nn.Sequential(batch_norm_2d(widths[-1], last_classes, bn_eps), nn.ReLU(),
                                 initialize(nn.Conv2d(widths[-1], channels, 3, 1, 1), init), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.dense(z).view(z.shape[0], self.top, self.bottom, self.bottom)
        if not self.conditional:
            return self.out(self.blocks(h))
        y = check_labels(y, z.shape[0], "generator")
        for block in self.blocks:
            h = block(h, y)
        return run_layers(self.out, h, y)


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool, optimized: bool, norm: NormHook,
                 init: str, name: str, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.down, self.optimized = down, optimized
        self.conv1 = norm.wrap(initialize(nn.Conv2d(cin, cout, 3, 1, 1), init, residual=True),
                               f"{name}.conv1", center=False)
        # MSN (norm.center=auto) centres the conv that ends each residual branch after the first
        # block, as the authors' CNN centres the conv that ends each later stage; never block0,
        # which reads the input (centring it would hide a shift of the whole batch from D).
        self.conv2 = norm.wrap(initialize(nn.Conv2d(cout, cout, 3, 1, 1), init, residual=True),
                               f"{name}.conv2", center=not optimized)
        # Feature norm sits before each activation, except in the first block (as for the CNN).
        self.norm1 = nn.Identity() if optimized else norm.feature_norm(cin, dims=2)
        self.norm2 = nn.Identity() if optimized else norm.feature_norm(cout, dims=2)
        self.learnable_sc = cin != cout or down
        if self.learnable_sc:
            self.shortcut = norm.wrap(initialize(nn.Conv2d(cin, cout, 1), init), f"{name}.shortcut",
                                      center=False)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.optimized else self.act(self.norm1(x))
        h = self.conv2(self.act(self.norm2(self.conv1(h))))
        return F.avg_pool2d(h, 2) if self.down else h

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if not self.learnable_sc:
            return x
        if self.optimized:  # pool first: cheaper, and the paper's optimized block does so
            return self.shortcut(F.avg_pool2d(x, 2))
        h = self.shortcut(x)
        return F.avg_pool2d(h, 2) if self.down else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._residual(x) + self._skip(x)

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """``K(residual) + K(shortcut)``: the two branches run in parallel and are summed, so
        their constants add (an identity shortcut has 1). 2x2 average pooling: 1/2."""
        pool = AVG_POOL_2X2 if self.down else 1.0
        residual = k(self.conv1) * k(self.norm2) * k(self.act) * k(self.conv2) * pool
        if not self.optimized:
            residual = residual * k(self.norm1) * k(self.act)
        shortcut = k(self.shortcut) * pool if self.learnable_sc else 1.0
        return residual + shortcut


class ResNetDiscriminator(nn.Module):
    """``conditional="projection"``: ``D(x, y) = dense(h) + <embed(y), h>`` on the pooled
    features h (Miyato & Koyama 2018), ``embed`` built through ``norm``; ``"none"``: y ignored."""

    def __init__(self, shape: Sequence[int], ch: int | None = None, norm: NormHook = IDENTITY,
                 init: str = "default", activation: str = "relu", negative_slope: float = 0.1,
                 conditional: str = "none", num_classes: int | None = None,
                 head_bias: bool = False) -> None:
        super().__init__()
        channels, size = image_shape("resnet", shape, SIZES)
        self.num_classes = discriminator_classes(conditional, num_classes)
        self.conditional = conditional
        default_ch, mults, downs = D_SCHEDULE[size]
        ch = ch or default_ch
        self.act = make_activation(activation, negative_slope)
        blocks, cin = [], channels
        for i, (m, down) in enumerate(zip(mults, downs)):
            blocks.append(DBlock(cin, m * ch, down, i == 0, norm, init, f"block{i}", self.act))
            cin = m * ch
        self.blocks = nn.Sequential(*blocks)
        self.head = norm.wrap(initialize(nn.Linear(cin, 1, bias=bool(head_bias)), init), "dense",
                              output=True)
        self.projection = projection_head(conditional, self.num_classes, cin, norm, init)
        self.final_positions = (size // 2 ** sum(downs)) ** 2  # summed by the global pooling

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.act(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return logit(self.head, self.projection, h, y, "discriminator")

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """An upper bound on D's Lipschitz constant given each part's constant ``k(part)``
        (``spectral_gan.norms.lipschitz``): blocks in series (each the sum of its two branches),
        the final activation, the global sum over H*W positions (sqrt(H*W)) and the dense layer
        (plus ``k(embed)`` for a projection D: ``conditional.logit_constant``)."""
        bound = (logit_constant(k, self.head, self.projection) * k(self.act)
                 * sum_pool_constant(self.final_positions))
        for block in self.blocks:
            bound = bound * block.lipschitz_bound(k)
        return bound
