"""Strict spectral normalization of convolutions: ``norm.weight=sn_conv``.

``W / sigma(A_W)``, where ``A_W`` is the convolution as a linear operator at the layer's input size
(``norms.conv_operator``), instead of SN's ``W / sigma(W as a (c_out, c_in*kh*kw) matrix)``
(Miyato et al., ICLR 2018), which does not bound the layer's Lipschitz constant (Tsuzuku et al.,
NeurIPS 2018). Strict SN is what the BSN paper compares SN and BSN with (Lin, Sekar, Fanti,
NeurIPS 2021, Section 4); the operator-norm power iteration is Gouk et al. (2021).

Like SN, sigma comes from a persistent power iteration, one step per evaluation in training mode
(``n_power_iterations``), none in eval mode or while paused (``power_iteration_paused``: the
holder is a ``PowerIteration`` for that purpose), no gradient through the vector. The vector v has
the shape of one input sample (a buffer, so it is checkpointed): the input size is unknown until
the first forward, so a forward pre-hook sets it then and warms it up. Until then (e.g. when the
parametrization is registered) the weight is divided by the exact spectral norm of the reshaped
matrix. A checkpoint restores v at its saved shape (``_load_from_state_dict``).

Linear layers (and any non-convolution) get matrix SN: for them the two coincide. Not offered for
the generator (``g_norm``): its EMA copy is made before the first forward fixes v's shape.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms import conv_operator
from spectral_gan.norms.power_iteration import PowerIteration, weight_matrix
from spectral_gan.norms.registry import register_weight_norm
from spectral_gan.norms.spectral import output_dim, spectral_norm

WARMUP_ITERATIONS = 30


class ConvOperatorIteration(PowerIteration):
    """The persistent input-shaped vector of one convolution's operator power iteration.

    A ``PowerIteration`` only so that ``power_iterations``/``power_iteration_paused`` find it;
    it holds ``v`` of shape (1, *input size), empty until the input size is known.
    """

    def __init__(self, eps: float) -> None:
        nn.Module.__init__(self)  # no matrix: the parent's u, v do not apply
        self.eps = eps
        self.paused = False
        self.register_buffer("v", torch.zeros(0))

    @property
    def ready(self) -> bool:
        return self.v.numel() > 0

    def initialize(self, layer: nn.Module, weight: torch.Tensor, input_shape: tuple[int, ...]) -> None:
        v = conv_operator.random_vector(tuple(input_shape), weight.device)
        self.v = conv_operator.iterate(layer, weight, v, WARMUP_ITERATIONS, self.eps)

    def advance(self, layer: nn.Module, weight: torch.Tensor, n: int) -> None:
        self.v.copy_(conv_operator.iterate(layer, weight, self.v, n, self.eps))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        saved = state_dict.get(prefix + "v")
        if saved is not None and saved.shape != self.v.shape:  # input size fixed at save time
            self.v = torch.empty_like(saved, device=self.v.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


class ConvSpectralNorm(nn.Module):
    """Parametrization ``W -> W / sigma(conv operator of W at the input size)``."""

    def __init__(self, layer: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        if n_power_iterations < 1:
            raise ValueError(f"n_power_iterations must be >= 1, got {n_power_iterations}")
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        self.dim = output_dim(layer)
        self.power = ConvOperatorIteration(eps)
        # The layer's hyperparameters (stride, padding, ...), without holding the layer itself
        # (a reference cycle through the parametrization); not a submodule, so that nothing
        # that walks ``modules()`` takes it for a weight layer.
        object.__setattr__(self, "_spec", _layer_spec(layer))

    def iterating(self) -> bool:
        return self.training and not self.power.paused

    def prepare(self, weight: torch.Tensor, input_shape: tuple[int, ...]) -> None:
        if not self.power.ready:
            self.power.initialize(self._spec, weight, input_shape)

    def sigma(self, weight: torch.Tensor, iterate: bool) -> torch.Tensor:
        if not self.power.ready:  # before the first forward: the reshaped matrix's exact norm
            return torch.linalg.matrix_norm(weight_matrix(weight.float(), self.dim), ord=2)
        if iterate:
            self.power.advance(self._spec, weight, self.n_power_iterations)
        return conv_operator.sigma(self._spec, weight, self.power.v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        s = self.sigma(weight, self.iterating())
        return weight / s.clamp_min(self.eps).to(weight.dtype)

    @torch.no_grad()
    def raw_sigmas(self, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        """The current estimate of the raw weight's operator norm, without iterating."""
        if not self.power.ready:
            return {}
        return {"": conv_operator.sigma(self._spec, weight, self.power.v)}

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value


def _layer_spec(layer: nn.Module) -> nn.Module:
    """A weightless copy of the layer's type and hyperparameters, for ``conv_operator.apply``."""
    spec = layer.__class__.__new__(layer.__class__)
    nn.Module.__init__(spec)
    for key in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                "transposed", "output_padding", "groups", "padding_mode",
                "_reversed_padding_repeated_twice"):
        if hasattr(layer, key):
            object.__setattr__(spec, key, getattr(layer, key))
    return spec


def _record_input_shape(layer: nn.Module, args: tuple) -> None:
    """Forward pre-hook: the first input fixes the operator's input size."""
    p = layer.parametrizations.weight[0]
    if not p.power.ready:
        p.prepare(layer.parametrizations.weight.original, tuple(args[0].shape[1:]))


@register_weight_norm("sn_conv", options=("n_power_iterations", "eps"))
def conv_spectral_norm(module: nn.Module, n_power_iterations: int = 1,
                       eps: float = 1e-12) -> nn.Module:
    """Strict SN for a convolution (operator norm at its input size); matrix SN otherwise."""
    if not conv_operator.is_conv(module):
        return spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)
    parametrize.register_parametrization(module, "weight",
                                         ConvSpectralNorm(module, n_power_iterations, eps))
    module.register_forward_pre_hook(_record_input_shape)
    return module
