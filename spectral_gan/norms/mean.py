"""Mean spectral normalization (MSN) and mean-only feature centering.

Subramanian & Chong, "Mean Spectral Normalization of Deep Neural Networks for Embedded
Automation", arXiv 1907.04003 (code: AntixK/mean-spectral-norm): SN on the weight, then
per-channel mean-only batch centering of the layer output, ``y = x - mu_batch + beta``, with a
running mean in eval mode and no division by the variance. The paper also learns a per-channel
scale gamma; it is behind ``learn_scale`` (off by default) because gamma can undo the Lipschitz
bound that SN provides. Centering mixes the samples of a batch, like BatchNorm.

Placement: SN goes on every layer; centering only where the authors' discriminator has it
(``norm.center=auto``, see :func:`centers`), never after the input layer. Centring the input
layer's output removes any shift that the whole batch shares, and since real and fake batches
pass D separately, D could not see a fake batch's offset at all.

Speed: after a Conv or Linear layer the centering is folded into the layer's bias. By linearity,
the batch mean of ``conv(x)`` is ``conv(mean_b x)`` (one input pass and a one-sample product), so
``y = conv(x, W) + (beta - mean)`` costs no pass over the output, forward or backward, where a
separate centering module takes about four (timings: docs/benchmarks.md). Both paths compute
the same function, gradients included.
"""
from __future__ import annotations

import fnmatch
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spectral_gan.errors import ConfigError

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

    def lipschitz_bound(self, k) -> torch.Tensor:
        """In eval mode a shift (constant 1), or a per-channel scaling by gamma (``max_c |gamma_c|``)."""
        if self.weight is None:
            return torch.tensor(1.0)
        return self.weight.detach().float().abs().max()


def out_features(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.Embedding):  # a hidden embedding's output: one row of embedding_dim
        return layer.embedding_dim
    return layer.out_channels


_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def batch_mean(x: torch.Tensor) -> torch.Tensor:
    """``x.mean(0, keepdim=True)``, reduced as a (batch, rest) matrix in x's memory order.

    For a channels_last batch, torch reduces dim 0 of the 4-D tensor much more slowly than the
    same memory viewed as a (batch, H*W*C) matrix (timings: docs/benchmarks.md). A sum divided afterwards rather than ``mean``: the backward of ``mean`` divides the broadcast
    gradient, materializing a batch-sized tensor, where that of ``sum`` broadcasts a view.
    """
    n = x.shape[0]
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        _, c, h, w = x.shape
        return (x.permute(0, 2, 3, 1).reshape(n, -1).sum(0) / n).view(1, h, w, c).permute(0, 3, 1, 2)
    return (x.reshape(n, -1).sum(0) / n).view(1, *x.shape[1:])


class MeanSpectralNorm(nn.Module):
    """A spectrally normalized layer followed by mean-only centering of its output."""

    def __init__(self, layer: nn.Module, center: MeanCenter | None) -> None:
        super().__init__()
        self.layer = layer
        self.center = center if center is not None else nn.Identity()
        self.fold = (isinstance(layer, _FOLDABLE) and isinstance(center, MeanCenter)
                     and center.weight is None)

    @property
    def weight(self) -> torch.Tensor:
        return self.layer.weight

    @property
    def wrapped(self) -> nn.Module:
        """The weight layer inside (the monitor's ``drift/<layer>`` reads this wrapper's output)."""
        return self.layer

    def lipschitz_bound(self, k) -> torch.Tensor:
        """The SN layer's constant times the centering's (``spectral_gan.norms.lipschitz``)."""
        return k(self.layer) * k(self.center)

    def _apply_layer(self, x: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, weight, bias)
        return self.layer._conv_forward(x, weight, bias)

    def _output_mean(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Per-channel mean over batch and positions of ``layer(x)`` without its bias.

        By linearity it is the layer applied to the batch mean of x (zero padding included). For
        a Conv2d, the mean over output positions is taken before the product: the mean of the
        unfolded patches times the weight matrix, a matrix-vector product (a one-sample
        convolution's backward measured slower than the whole centering it replaces).
        """
        x_mean = batch_mean(x)
        layer = self.layer
        if (isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros"
                and not isinstance(layer.padding, str)):
            patches = F.unfold(x_mean, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
            # mv is not an autocast op: under bf16-mixed x comes in bf16, the weight in fp32
            return torch.mv(weight.flatten(1), patches[0].mean(1).to(weight.dtype))
        one = self._apply_layer(x_mean, weight, None)
        return one.mean(dim=[0, *range(2, one.dim())])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fold:
            return self.center(self.layer(x))
        # The layer's forward is bypassed: honour its input hooks (e.g. speed.channels_last).
        for hook in self.layer._forward_pre_hooks.values():
            result = hook(self.layer, (x,))
            if result is not None:
                x = result[0] if isinstance(result, tuple) else result
        center, weight, bias = self.center, self.layer.weight, self.layer.bias
        if self.training:
            # mean over batch and positions of layer(x) = that of layer(mean_b x), by linearity
            # (zero padding included); the layer's own bias cancels out of y.
            mean = self._output_mean(x, weight)
            with torch.no_grad():  # running statistics of the layer's output, bias included
                full = mean.detach() if bias is None else mean.detach() + bias.detach()
                center.running_mean.lerp_(full.to(center.running_mean.dtype), center.momentum)
            shift = center.bias - mean.to(center.bias.dtype)
            if weight.requires_grad or not shift.requires_grad:
                return self._apply_layer(x, weight, shift)
            # Frozen layer (the generator's update) with a shift that still needs its gradient
            # (through x): oneDNN's convolution computes the weight gradient whenever the bias
            # needs one (a much slower conv backward, docs/benchmarks.md), so add the shift outside.
            y = self._apply_layer(x, weight, None)
            return y.add_(shift.view((1, -1) + (1,) * (y.dim() - 2)).to(y.dtype))
        shift = center.bias - center.running_mean
        if bias is not None:
            shift = shift + bias
        return self._apply_layer(x, weight, shift.to(x.dtype))


CENTER_RULES = ("auto", "hidden")


def centers(center: str | Sequence[str], center_site: bool, layer_name: str | None,
            output_layer: bool) -> bool:
    """Whether MSN centres this layer's output, by ``norm.center``:

    - ``auto`` (default): where the architecture's rule puts it (``center_site``, from the model
      through ``NormHook.wrap``), as the authors place it: their GAN discriminator
      (AntixK/mean-spectral-norm, ``MSNGAN/model.py``, ``_MSNnetD``) centres after 3 of its 7
      convolutions, the ones that end the second and third resolution stage and the last, never
      the input layer;
    - ``hidden``: after every hidden layer (the input layer included; an ablation: D is then
      blind to a shift of the whole batch);
    - a list of layer-name patterns (fnmatch, e.g. ``[conv3, conv5, conv6]``).
    Never the logit layer: a centred logit has batch mean zero for real and fake batches alike.
    """
    if output_layer:
        return False
    if isinstance(center, str) and center in CENTER_RULES:
        return center_site if center == "auto" else True
    if isinstance(center, str):
        if any(ch in center for ch in "*?["):
            center = [center]
        else:
            raise ConfigError(f"norm.center={center!r} is not a rule or a pattern; use "
                              f"{' | '.join(CENTER_RULES)} or a list of layer-name patterns such "
                              f"as [conv3, conv5, conv6]")
    patterns = [str(p) for p in center]
    return layer_name is not None and any(fnmatch.fnmatchcase(layer_name, p) for p in patterns)


# Centering needs batch statistics: batch-mixing, and kept out of the generator (g_norm).
@register_weight_norm("msn", mixes_batch=True,
                      options=("learn_scale", "momentum", "n_power_iterations", "eps", "center"))
def mean_spectral_norm(module: nn.Module, learn_scale: bool = False, momentum: float = 0.1,
                       n_power_iterations: int = 1, eps: float = 1e-12,
                       center: str | Sequence[str] = "auto", output_layer: bool = False,
                       center_site: bool = True, layer_name: str | None = None) -> nn.Module:
    """Return ``module`` with SN, followed by mean-only batch centering of its output where
    :func:`centers` says so (elsewhere SN alone, as the authors' other layers).

    ``output_layer=True`` (the discriminator's logit layer) skips the centering: a centered logit
    would have batch mean zero for real and fake batches alike. ``center_site`` and
    ``layer_name`` come from ``NormHook.wrap``; called directly on one layer, it is centred.
    """
    layer = spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)
    on = centers(center, center_site, layer_name, output_layer)
    return MeanSpectralNorm(layer, MeanCenter(out_features(module), learn_scale, momentum)
                            if on else None)


@register_feature_norm("mean", mixes_batch=True)
def mean_center(num_features: int, dims: int) -> nn.Module:
    """Mean-only centering after a hidden layer (the feature half of MSN), for any weight norm."""
    return MeanCenter(num_features)
