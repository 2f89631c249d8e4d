"""What the GAN's two networks are fed: noise, the labels of generated samples, generated batches
(per packing slot), loader batches split into images and labels, and D's view of its inputs
through the differentiable augmentation (``augment=diffaugment``, ``spectral_gan/augment.py``).

A mixin of ``spectral_gan.training.gan.GAN``: it reads the module's ``G``, ``D``, ``settings``,
``conditional``, ``label_probs`` and ``augment``."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

import torch

from spectral_gan.augment import diff_augment
from spectral_gan.models.pack import pack_of, packed_count, penalty_inputs


def real_and_fake_logits(d_fn: Callable, D: torch.nn.Module, real: torch.Tensor,
                         fake: torch.Tensor, y_real: torch.Tensor | None,
                         y_fake: torch.Tensor | None, joint: bool
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """D's logits of a real and a fake batch in a D update: one pass over both (``joint``:
    ``speed.joint_d_pass``, split by D's packed counts) or one pass each. Shared by the eager
    update (``GAN._discriminator_update``) and the captured one (``captured_step.d_update``)."""
    if joint:
        labels = None if y_real is None else torch.cat([y_real, y_fake])
        return d_fn(torch.cat([real, fake]), labels).split(
            [packed_count(D, len(real)), packed_count(D, len(fake))])
    return d_fn(real, y_real), d_fn(fake, y_fake)


class GANInputs:
    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    def _fake_labels(self, n: int) -> torch.Tensor | None:
        """Labels of ``n`` generated samples (None for an unconditional GAN)."""
        if not self.conditional:
            return None
        return torch.multinomial(self.label_probs, n, replacement=True)

    def _g(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.G(z) if y is None else self.G(z, y)

    def _generate(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """``n`` training fakes. For a packing D (``discriminator.pack=m``, ``pack_generator=
        per_slot``) G runs once per slot, as PacGAN's code does (its batch norm then sees n/m
        samples per call), and the calls are interleaved so each tuple of m consecutive samples
        takes its i-th sample from the i-th call."""
        z, m = self._noise(n), pack_of(self.D)
        if m == 1 or self.settings.pack_generator == "joint" or n % m:
            return self._g(z, y)
        parts = [self._g(zi, None if y is None else yi)
                 for zi, yi in zip(z.view(n // m, m, -1).unbind(1),
                                   [None] * m if y is None else y.view(n // m, m).unbind(1))]
        return torch.stack(parts, dim=1).flatten(0, 1)

    def _d(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits of samples ``x`` (labels ``y``), augmented first when ``augment`` is on
        (each sample its own draw, real and fake alike, in both updates)."""
        if self.augment:
            x = diff_augment(x, self.augment)
        return self.D(x) if y is None else self.D(x, y)

    def _penalty_d(self, real: torch.Tensor, fake: torch.Tensor, y_real: torch.Tensor | None
                   ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
        """(D, real, fake) as a gradient penalty takes them: per D input (packed tuples for a
        packing D); at the real labels for a class-conditional D; and through the augmentation
        when it is on, so the gradient is taken at the un-augmented sample through the augmented
        view D was trained on (as StyleGAN2-ADA's and R3GAN's R1 are)."""
        d_fn, p_real, p_fake = penalty_inputs(self.D, real, fake)
        if y_real is not None:
            # D at the real labels, also at WGAN-GP's interpolates between a real and a fake
            # sample (whose labels differ): the penalty constrains x -> D(x, y) for the classes
            # of the data (as StudioGAN's conditional penalties do).
            d_fn = partial(self.D, y=y_real)
        if self.augment:
            inner, policy = d_fn, self.augment
            d_fn = lambda x: inner(diff_augment(x, policy))  # noqa: E731
        return d_fn, p_real, p_fake

    def _split_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(images, labels) of a loader batch; labels None for an unconditional GAN."""
        if isinstance(batch, (tuple, list)):
            images, labels = batch
            return images, (labels if self.conditional else None)
        if self.conditional:
            raise RuntimeError("a class-conditional GAN needs (images, labels) batches: call "
                               "datamodule.use_labels() before training")
        return batch, None

