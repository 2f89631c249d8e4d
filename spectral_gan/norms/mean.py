"""Mean spectral normalization (MSN) and mean-only feature centering.

Subramanian & Chong, "Mean Spectral Normalization of Deep Neural Networks for Embedded
Automation", arXiv 1907.04003 (code: AntixK/mean-spectral-norm): SN on the weight, then
per-channel mean-only batch centering of the layer output, ``y = x - mu_batch + beta``, with a
running mean in eval mode and no division by the variance. The paper also learns a per-channel
scale gamma; it is behind ``learn_scale`` (off by default) because gamma can undo the Lipschitz
bound that SN provides. Centering mixes the samples of a batch, like BatchNorm.
"""
from __future__ import annotations

import torch
from torch import nn

from spectral_gan.norms.registry import register_feature_norm, register_weight_norm
from spectral_gan.norms.spectral import spectral_norm


class MeanCenter(nn.Module):
    """``y = gamma * (x - mean) + beta`` per channel (dim 1); batch mean in training, running mean in eval."""

    def __init__(self, num_features: int, learn_scale: bool = False, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.weight = nn.Parameter(torch.ones(num_features)) if learn_scale else None
        self.register_buffer("running_mean", torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            mean = x.mean(dim=[0, *range(2, x.dim())])
            with torch.no_grad():  # same update rule as BatchNorm's running statistics
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
        else:
            mean = self.running_mean.to(x.dtype)
        y = x - mean.view(shape)
        if self.weight is not None:
            y = y * self.weight.view(shape)
        return y + self.bias.view(shape)


def out_features(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    return layer.out_channels


class MeanSpectralNorm(nn.Module):
    """A spectrally normalized layer followed by mean-only centering of its output."""

    def __init__(self, layer: nn.Module, center: MeanCenter | None) -> None:
        super().__init__()
        self.layer = layer
        self.center = center if center is not None else nn.Identity()

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.center(self.layer(x))


@register_weight_norm("msn")
def mean_spectral_norm(module: nn.Module, learn_scale: bool = False, momentum: float = 0.1,
                       n_power_iterations: int = 1, eps: float = 1e-12,
                       output_layer: bool = False) -> nn.Module:
    """Return ``module`` with SN, followed by mean-only batch centering of its output.

    ``output_layer=True`` (the discriminator's logit layer) skips the centering: a centered logit
    would have batch mean zero for real and fake batches alike.
    """
    layer = spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)
    center = None if output_layer else MeanCenter(out_features(module), learn_scale, momentum)
    return MeanSpectralNorm(layer, center)


@register_feature_norm("mean")
def mean_center(num_features: int, dims: int) -> nn.Module:
    """Mean-only centering after a hidden layer (the feature half of MSN), for any weight norm."""
    return MeanCenter(num_features)
