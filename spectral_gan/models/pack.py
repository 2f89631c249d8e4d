"""Packing (PacGAN, Lin, Khetan, Fanti & Oh, NeurIPS 2018): the discriminator judges m samples
at once.

A batch of B samples is grouped into B/m tuples of consecutive samples, and each tuple is one
input of the discriminator: the m samples concatenated along the feature axis (channels for
images, coordinates for points). The training step runs D on real and fake batches (separately,
or as one ``cat(real, fake)`` batch of two halves that are each a multiple of m), so a tuple holds
real samples only or fake samples only, never both. D returns one logit per tuple (B/m logits),
and every loss (hinge, ns, wgan, lsgan) is its usual mean over those packed logits, as in
PacGAN's code (fjxmlzn/PacGAN, ``synthetic_data_experiments/PacGAN/pacgan/bricks.py``: the
generator's m sample batches are concatenated on axis 1 and D gives one prediction per row).

Weight normalizations (sn, bsn, osn) act on D's weights and need nothing else. Batch-statistic
layers (``feature: batch`` or MSN's ``mean``) are allowed: their statistics are taken over the
B/m tuples of one D call, which are all real or all fake, exactly the batches those layers see
without packing (PacGAN's own image discriminators use BatchNorm with packing); only the number
of rows the statistics average over drops to B/m. Gradient penalties are taken with respect to
D's real input, the tuple: ``penalty_inputs`` hands them the packed batches and D's packed
forward, so WGAN-GP's interpolation weight is drawn per tuple and ``||grad||`` is the norm over
the whole tuple.

Discriminators that pack have an integer attribute ``pack`` and a ``forward_packed`` method that
takes already packed input; the others are treated as ``pack = 1``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from spectral_gan.errors import ConfigError


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, ...) -> (B/pack, pack*C, ...): each run of ``pack`` consecutive samples becomes one
    input, concatenated along dimension 1 (coordinates of points, channels of images), in order."""
    if pack == 1:
        return x
    if x.shape[0] % pack:
        raise ConfigError(
            f"discriminator.pack={pack} groups the batch into tuples of {pack} samples, but a "
            f"batch of {x.shape[0]} is not a multiple of {pack}: set batch_size to a multiple of "
            f"{pack} (PacGAN keeps {pack} x its unpacked batch size)")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def pack_of(discriminator: nn.Module) -> int:
    """The packing degree of a discriminator (1 when it does not pack)."""
    return int(getattr(discriminator, "pack", 1) or 1)


def packed_count(discriminator: nn.Module, n: int) -> int:
    """How many logits D returns for a batch of ``n`` samples."""
    return n // pack_of(discriminator)


def penalty_inputs(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor
                   ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
    """(D, real, fake) as a gradient penalty should see them: for a packing D, its packed forward
    and the packed batches (penalties are per D input, i.e. per tuple); otherwise unchanged."""
    pack = pack_of(discriminator)
    if pack == 1:
        return discriminator, real, fake
    return (discriminator.forward_packed, pack_samples(real, pack),
            None if fake is None else pack_samples(fake, pack))
