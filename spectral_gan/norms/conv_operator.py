"""The spectral norm of a convolution as a linear operator, at a given input size.

SN (Miyato et al., ICLR 2018) divides a convolution's weight by the largest singular value of the
weight reshaped to (c_out, c_in*kh*kw). That matrix is not the linear map the layer computes: the
map is a (c_out*H'*W') x (c_in*H*W) matrix of shifted copies of the kernel, and its spectral norm
can exceed the reshaped matrix's by up to a factor sqrt(kh*kw) (Tsuzuku, Sato, Sugiyama,
"Lipschitz-Margin Training", NeurIPS 2018, Proposition 2). The operator norm is estimated here by
power iteration through the convolution and its adjoint (Gouk, Frank, Pfahringer, Cree,
"Regularisation of neural networks by enforcing Lipschitz continuity", Machine Learning 110,
2021, Section 3.2): ``u <- A v / ||A v||``, ``v <- A^T u / ||A^T u||``, sigma ~ ||A v||. The
vector v has the shape of one input sample, so the estimate depends on the input size (padding
makes border positions see fewer weights).

Pure functions of a layer's hyperparameters, its (effective) weight and a vector; the callers keep
the vectors (``norms.monitor`` for the logged figures, ``norms.conv_spectral`` for
``norm.weight=sn_conv``). The adjoint is the input gradient of the linear map, taken by autograd, so
every padding mode, stride, dilation, group count and the transposed convolutions are covered by
the same code. The iteration approaches sigma from below.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d)
_TRANSPOSED = {nn.ConvTranspose1d: F.conv_transpose1d, nn.ConvTranspose2d: F.conv_transpose2d,
               nn.ConvTranspose3d: F.conv_transpose3d}


def is_conv(layer: nn.Module) -> bool:
    return isinstance(layer, CONV_LAYERS)


def apply(layer: nn.Module, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The linear part of ``layer`` (no bias) with ``weight`` applied to a batch ``x``."""
    for kind, fn in _TRANSPOSED.items():
        if isinstance(layer, kind):
            return fn(x, weight, None, layer.stride, layer.padding, layer.output_padding,
                      layer.groups, layer.dilation)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return layer._conv_forward(x, weight, None)  # honours padding_mode and padding='same'
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight)
    raise TypeError(f"no linear operator known for {type(layer).__name__}")


def adjoint(layer: nn.Module, weight: torch.Tensor, y: torch.Tensor,
            input_shape: tuple[int, ...]) -> torch.Tensor:
    """``A^T y`` for the map ``A`` of :func:`apply` on inputs of ``input_shape`` (with batch).

    ``torch.func.vjp`` rather than ``autograd.grad`` from a leaf made with ``requires_grad=True``:
    the same backward kernels (the same numbers), and dynamo traces it, so the power iteration
    stays in a captured training step (``training/captured_step.py``)."""
    x = torch.zeros(input_shape, dtype=y.dtype, device=y.device)
    w = weight.detach()
    _, pullback = torch.func.vjp(lambda x_: apply(layer, w, x_), x)
    return pullback(y)[0]


@torch.no_grad()
def iterate(layer: nn.Module, weight: torch.Tensor, v: torch.Tensor, n: int,
            eps: float = 1e-12) -> torch.Tensor:
    """``n`` power-iteration steps from ``v`` (one input sample, batch dim 1); returns the new v,
    of unit norm. Runs in fp32 without autocast."""
    with torch.autocast(device_type=v.device.type, enabled=False):
        w = weight.detach().float()
        v = v.float()
        for _ in range(n):
            u = apply(layer, w, v)
            u = u / u.norm().clamp_min(eps)
            v = adjoint(layer, w, u, tuple(v.shape))
            v = v / v.norm().clamp_min(eps)
    return v


def sigma(layer: nn.Module, weight: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``||A v||`` for a unit v: the estimate of the operator norm, a lower bound that equals it
    when v is a top right-singular vector. Differentiable in ``weight`` (v is a constant), with
    gradient ``u v^T`` as SN's ``u^T W v``. fp32."""
    with torch.autocast(device_type=weight.device.type, enabled=False):
        return apply(layer, weight.float(), v.detach().float()).norm()


def random_vector(input_shape: tuple[int, ...], device=None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A random unit vector of one sample's shape (with a batch dimension of 1); drawn on the CPU
    from ``generator`` when given (so that diagnostics leave the training RNG stream alone)."""
    if generator is not None:
        v = torch.randn((1, *input_shape), generator=generator).to(device)
    else:
        v = torch.randn((1, *input_shape), device=device)
    return v / v.norm()


def operator_norm(layer: nn.Module, weight: torch.Tensor, input_shape: tuple[int, ...],
                  n: int = 500, v: torch.Tensor | None = None, tol: float = 1e-7) -> torch.Tensor:
    """The converged estimate: iterate from ``v`` (random if None) until sigma changes by less
    than ``tol`` (relative) or after ``n`` steps. For tests and one-off figures."""
    v = random_vector(tuple(input_shape), weight.device) if v is None else v
    previous = None
    with torch.no_grad():
        for _ in range(n):
            v = iterate(layer, weight, v, 1)
            s = sigma(layer, weight, v)
            if previous is not None and abs(float(s) - previous) <= tol * max(float(s), 1e-30):
                break
            previous = float(s)
    return s


def dense_matrix(layer: nn.Module, weight: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The layer's linear map as a dense matrix (outputs x inputs), built column by column from
    its impulse responses. Only for small inputs (tests)."""
    n = 1
    for s in input_shape:
        n *= s
    eye = torch.eye(n, dtype=weight.dtype, device=weight.device).view(n, *input_shape)
    with torch.no_grad():
        return apply(layer, weight, eye).reshape(n, -1).t()
