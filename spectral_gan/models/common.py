"""Shape checks and weight initialization shared by the model families."""
from __future__ import annotations

import math

from typing import Sequence

import torch
from torch import nn

from spectral_gan.errors import ConfigError

INITS = ("default", "normal_0.02", "xavier", "lecun", "orthogonal", "sngan")
ACTIVATIONS = ("leaky_relu", "relu", "selu")
# ``maxout`` (Goodfellow et al. 2013) widens the layer before it (``pieces`` outputs per unit), so
# only the models that build it themselves offer it (MLPDiscriminator, activation=maxout).
MAXOUT = "maxout"


def image_shape(model: str, shape: Sequence[int], sizes: Sequence[int]) -> tuple[int, int]:
    """(channels, size) of a square image shape that ``model`` can build, else a ConfigError."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in sizes:
        supported = ", ".join(str(s) for s in sizes)
        raise ConfigError(
            f"{model} builds square images of {supported} px, but the data gives shape "
            f"{list(shape)}; set data.image_size to one of {supported}"
            + (" or use generator=mlp discriminator=mlp for 2-D data" if len(shape) == 1 else "")
        )
    return shape[0], shape[1]


def initialize(layer: nn.Module, scheme: str, residual: bool = False) -> nn.Module:
    """Initialize a Linear/Conv weight in place (before any normalization is applied).

    ``sngan`` is SNGAN-projection's (pfnet-research/sngan_projection, ``gen_models/resblocks.py``,
    ``dis_models/resblocks.py``): Glorot uniform with gain sqrt(2) on the convolutions of a
    residual branch (``residual=True``), gain 1 on every other layer; biases 0.

    ``normal_0.02`` is the DCGAN initialization that the BSN paper uses with the SN-paper CNN;
    ``xavier`` (Glorot & Bengio 2010, uniform) and ``lecun`` (normal, std 1/sqrt(fan_in), LeCun
    et al. 1998; the init SELU networks assume) are the schemes the BSN paper relates SN to;
    ``orthogonal`` is Saxe et al. 2014; ``default`` keeps PyTorch's.
    """
    if scheme not in INITS:
        raise ConfigError(f"unknown init {scheme!r}; valid options are: {', '.join(INITS)}")
    weight = getattr(layer, "weight", None)
    if scheme == "default" or weight is None:
        return layer
    if scheme == "normal_0.02":
        nn.init.normal_(weight, 0.0, 0.02)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight)
    elif scheme == "sngan":
        nn.init.xavier_uniform_(weight, gain=math.sqrt(2.0) if residual else 1.0)
    elif scheme == "lecun":
        nn.init.kaiming_normal_(weight, nonlinearity="linear")  # std = 1 / sqrt(fan_in)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def activation(name: str, negative_slope: float = 0.1) -> nn.Module:
    """The discriminator's nonlinearity: ``leaky_relu`` (SN paper, slope 0.1), ``relu`` or
    ``selu`` (Klambauer et al. 2017, self-normalizing networks; pair with ``init=lecun``)."""
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "relu":
        return nn.ReLU()
    if name == "selu":
        return nn.SELU()
    raise ConfigError(f"unknown activation {name!r}; valid options are: {', '.join(ACTIVATIONS)}")


class Maxout(nn.Module):
    """Maxout units (Goodfellow et al., ICML 2013): the preceding layer gives ``pieces`` values per
    unit, consecutive along the last dimension (unit j owns features j*pieces .. j*pieces +
    pieces - 1), and each unit outputs their maximum: (B, units*pieces) -> (B, units). The layout
    of Blocks' ``LinearMaxout``, which PacGAN's 2-D discriminator uses (fjxmlzn/PacGAN,
    ``synthetic_data_experiments/2DRing_GAN&PacGAN``: 5 pieces, 200 units)."""

    # 1-Lipschitz in the 2-norm: |max_k a_k - max_k b_k| <= max_k |a_k - b_k| per unit, and the
    # sum over units of those squares is at most ||a - b||^2 (read by norms/lipschitz.py).
    lipschitz_constant = 1.0

    def __init__(self, pieces: int) -> None:
        super().__init__()
        if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
            raise ConfigError(f"maxout_pieces must be a positive integer, got {pieces!r}")
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (x.shape[-1] // self.pieces, self.pieces)).amax(-1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
