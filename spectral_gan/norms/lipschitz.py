"""The discriminator's Lipschitz constant: an upper bound that follows the architecture, and an
empirical lower bound from input gradients.

Both concern D as a function of one input sample, ``x -> D(x)`` from R^n (l2) to R: in eval mode,
so that batch statistics are replaced by running ones (BatchNorm, MSN's centering) and each
sample's output depends on that sample alone. In training mode D is a function of the whole
batch and has no per-sample constant.

Upper bound (``lipschitz/bound_layerwise``): the model composes the constants of its parts
(``lipschitz_bound(k)`` on each discriminator of ``spectral_gan.models``): parts in series
multiply, parallel branches add (a ResNet block: ``K(residual branch) + K(shortcut)``, an identity
shortcut has constant 1). The constant ``k(module)`` of one part, from :class:`LayerConstants`:

- Linear: the exact spectral norm of its effective (normalized) weight.
- Embedding (a projection discriminator's class embedding V, num_classes x dim): the exact
  spectral norm of its effective weight, the constant of the linear map one-hot -> V^T onehot,
  and a bound on every row's norm ``||V_y||``, which is what the projection term
  ``<V_y, h>`` contributes to the logit layer's constant for a fixed label y (Miyato & Koyama,
  ICLR 2018): the layer ``h -> (w + V_y) . h`` has constant ``||w + V_y|| <= k(head) + k(embed)``.
- Convolution: the spectral norm of the convolution operator at the layer's input size
  (``norms.conv_operator``, Gouk et al. 2021), estimated by a power iteration warm-started from
  the previous log's vector (``iterations`` steps per log) or run to convergence
  (``iterations=None``). It approaches from below, so a few-step figure can lag a moving weight;
  the reshaped-matrix norm SN divides by is no bound for a convolution (Tsuzuku et al. 2018).
- ReLU, LeakyReLU(a): ``max(1, |a|)`` (1 for a <= 1). ELU(a): ``max(1, a)``.
- SELU: ``lambda * max(1, alpha)`` ~ 1.7581. Its derivative is lambda for x > 0 and
  ``lambda * alpha * e^x`` for x <= 0, whose supremum (x -> 0-) is lambda * alpha (Klambauer et
  al., NeurIPS 2017, lambda ~ 1.0507, alpha ~ 1.6733).
- Tanh 1, Sigmoid 1/4, Identity/Flatten/Dropout 1.
- BatchNorm (eval): ``max_c |gamma_c| / sqrt(running_var_c + eps)``, a per-channel scaling.
- A part that states its own constant as ``lipschitz_bound(k)`` (as the models do for their
  whole): MSN's centering (eval: a shift, constant 1, or ``max_c |gamma_c|`` with ``learn_scale``)
  and MSN's wrapper (its SN layer times that). This is how a normalization that wraps its layer
  tells this module its constant; nothing here names a method.
- Pooling and reshapes are the model's to state (a method knows where it pools): 2x2 average
  pooling has constant 1/2 (each output is the mean of 4 disjoint inputs, ``||(1/4) 1_4|| = 1/2``);
  a sum over P positions has constant sqrt(P).
A part with no known constant gives NaN, so that no figure is claimed for it.

Lower bound (``lipschitz/grad_max``): ``max_x ||grad_x D(x)||_2`` over a few real, fake and
interpolated samples (``eps x + (1 - eps) G(z)``); any such norm is at most the constant.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from spectral_gan.norms import conv_operator
from spectral_gan.norms.power_iteration import power_iteration_paused

ConstantFn = Callable[[nn.Module], torch.Tensor]
WARMUP_ITERATIONS = 20  # power-iteration steps for a convolution's first figure


def activation_constant(module: nn.Module) -> float | None:
    """The Lipschitz constant of an elementwise nonlinearity, or None if not one known here.
    A module may state its own as ``lipschitz_constant`` (e.g. maxout units)."""
    own = getattr(module, "lipschitz_constant", None)
    if own is not None:
        return float(own)
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(float(module.negative_slope)))
    if isinstance(module, nn.SELU):
        scale, alpha = 1.0507009873554805, 1.6732632423543772  # torch's SELU constants
        return scale * max(1.0, alpha)
    if isinstance(module, nn.ELU):
        return max(1.0, float(module.alpha))
    if isinstance(module, nn.Sigmoid):
        return 0.25
    if isinstance(module, (nn.ReLU, nn.Tanh, nn.Identity, nn.Flatten, nn.Dropout)):
        return 1.0
    return None


def _batch_norm_constant(module: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    if module.running_var is None:  # no running statistics: no per-sample function
        return torch.tensor(float("nan"))
    scale = (module.running_var.detach().float() + module.eps).rsqrt()
    if module.weight is not None:
        scale = scale * module.weight.detach().float().abs()
    return scale.max()


class LayerConstants:
    """``k(module)``: the Lipschitz constant of one part of a model (see the module docstring).

    Keeps one power-iteration vector per convolution between calls (warm start) and the input
    size of each convolution, recorded by :meth:`recording` around a forward.
    """

    def __init__(self, iterations: int | None = 2, seed: int = 0) -> None:
        self.iterations = iterations
        # Random draws of the diagnostics (fresh vectors, interpolation weights) come from here,
        # never from the global stream: a run's trajectory must not depend on when it logs.
        self.generator = torch.Generator().manual_seed(seed)
        self.vectors: dict[int, torch.Tensor] = {}
        self.input_shapes: dict[int, tuple[int, ...]] = {}
        self.per_layer: dict[str, torch.Tensor] = {}  # operator norms of the last bound, by name

    def recording(self, model: nn.Module):
        """Context: forward pre-hooks that record each convolution's input size (one sample)."""
        constants = self

        class _Recording:
            def __enter__(self_inner):
                self_inner.handles = []
                for m in model.modules():
                    if conv_operator.is_conv(m) and id(m) not in constants.input_shapes:
                        def hook(layer, args):
                            constants.input_shapes[id(layer)] = tuple(args[0].shape[1:])
                        self_inner.handles.append(m.register_forward_pre_hook(hook))
                return self_inner

            def __exit__(self_inner, *exc):
                for h in self_inner.handles:
                    h.remove()

        return _Recording()

    def needs_shapes(self, model: nn.Module) -> bool:
        return any(conv_operator.is_conv(m) and id(m) not in self.input_shapes for m in model.modules())

    @torch.no_grad()
    def weight_layer(self, layer: nn.Module) -> torch.Tensor:
        weight = layer.weight.detach().float()
        if isinstance(layer, (nn.Linear, nn.Embedding)):
            value = torch.linalg.matrix_norm(weight, ord=2)
        else:
            shape = self.input_shapes.get(id(layer))
            if shape is None:
                return torch.tensor(float("nan"))
            v = self.vectors.get(id(layer))
            if v is None or tuple(v.shape[1:]) != shape:  # a fresh vector: warm it up first
                v = conv_operator.iterate(layer, weight, conv_operator.random_vector(
                    shape, weight.device, self.generator), WARMUP_ITERATIONS)
            if self.iterations is None:  # converged: until sigma moves by < 1e-6 (relative)
                value, previous = None, None
                for _ in range(100):
                    v = conv_operator.iterate(layer, weight, v, 10)
                    value = conv_operator.sigma(layer, weight, v)
                    if previous is not None and abs(float(value) - previous) <= 1e-6 * float(value):
                        break
                    previous = float(value)
            else:
                v = conv_operator.iterate(layer, weight, v, self.iterations)
                value = conv_operator.sigma(layer, weight, v)
            self.vectors[id(layer)] = v
        name = getattr(layer, "norm_name", None)
        if name is not None:
            self.per_layer[name] = value
        return value

    def __call__(self, module: nn.Module) -> torch.Tensor:
        own = getattr(module, "lipschitz_bound", None)
        if callable(own):  # a part that states how it composes (a wrapper, a block, a model)
            return torch.as_tensor(own(self)).float()
        if isinstance(module, (nn.Linear, nn.Embedding, *conv_operator.CONV_LAYERS)):
            return self.weight_layer(module)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return _batch_norm_constant(module)
        if isinstance(module, nn.Sequential):
            out = torch.tensor(1.0)
            for m in module:
                out = out * self(m)
            return out
        c = activation_constant(module)
        return torch.tensor(float("nan") if c is None else c)


def layerwise_bound(model: nn.Module, constants: LayerConstants) -> torch.Tensor | None:
    """The architecture's bound ``model.lipschitz_bound(constants)``, or None for a model that
    does not state how its parts compose."""
    compose = getattr(model, "lipschitz_bound", None)
    if compose is None:
        return None
    with power_iteration_paused(model):
        return torch.as_tensor(compose(constants)).float().cpu()


def input_gradient_norms(model: nn.Module, x: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """``||grad_x D(x_i)||_2`` for each input of D in ``x``; D is evaluated as it is (call it in
    eval mode for per-sample gradients). ``pack=m`` (a PacGAN discriminator): one norm per tuple
    of m consecutive samples, D's input, the norm over the whole tuple (as the penalties take it).
    The parameters' ``.grad`` are left alone."""
    x = x.detach().float().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        (grad,) = torch.autograd.grad(out.float().sum(), x)
    return grad.reshape(x.shape[0] // pack, -1).norm(dim=1)


def _pack(model: nn.Module) -> int:
    """D's packing degree (``model.pack``, PacGAN; 1 when it does not pack). Read by attribute:
    the norms package imports nothing from the models."""
    return int(getattr(model, "pack", 1) or 1)


def sample_count(model: nn.Module, samples: int, available: int) -> int:
    """How many samples of each kind (real, fake, interpolated) the report takes: ``samples``
    rounded up to a multiple of D's packing degree (``model.pack``, PacGAN), at most the
    ``available`` ones rounded down, so that no tuple of a packed D mixes two kinds."""
    pack = _pack(model)
    wanted = -(-max(int(samples), 1) // pack) * pack
    return min(wanted, available // pack * pack)


def lipschitz_report(model: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     constants: LayerConstants, samples: int = 16) -> dict[str, torch.Tensor]:
    """``lipschitz/bound_layerwise``, ``lipschitz/grad_max`` (and per kind ``_real``, ``_fake``,
    ``_interp``) and ``sigma_op/<layer>`` (each convolution's operator norm, effective weight).

    Runs D in eval mode with the power iteration paused and restores its mode; the first call
    records the convolutions' input sizes during its forward. With a packing D (``pack=m``) each
    kind takes a multiple of m samples (:func:`sample_count`), so every tuple holds one kind, and
    the gradient norms are per tuple."""
    pack = _pack(model)
    n = sample_count(model, samples, min(len(real), len(fake)))
    real, fake = real[:n].detach(), fake[:n].detach()
    eps = torch.rand((n,) + (1,) * (real.dim() - 1), generator=constants.generator).to(real)
    points = {"real": real, "fake": fake, "interp": eps * real + (1 - eps) * fake}
    was_training = model.training
    out: dict[str, torch.Tensor] = {}
    model.eval()
    try:
        with power_iteration_paused(model), constants.recording(model):
            # one pass in eval mode (no batch statistics): each kind's n samples are whole tuples
            norms = input_gradient_norms(model, torch.cat(list(points.values())), pack)
        per_kind = n // pack
        for i, kind in enumerate(points):
            out[f"lipschitz/grad_max_{kind}"] = norms[i * per_kind:(i + 1) * per_kind].max()
        out["lipschitz/grad_max"] = norms.max()
        constants.per_layer = {}
        bound = layerwise_bound(model, constants)
        if bound is not None:
            out["lipschitz/bound_layerwise"] = bound
        for name, value in constants.per_layer.items():
            layer = next((m for m in model.modules() if getattr(m, "norm_name", None) == name), None)
            if layer is not None and conv_operator.is_conv(layer):
                out[f"sigma_op/{name}"] = value
    finally:
        model.train(was_training)
    return out


def sum_pool_constant(positions: int) -> float:
    """A sum over ``positions`` spatial positions: ``||sum_p h_p|| <= sqrt(P) ||h||`` (Cauchy-Schwarz,
    equality for equal h_p)."""
    return math.sqrt(positions)


AVG_POOL_2X2 = 0.5  # mean of 4 disjoint inputs: ||(1/4) 1_4||_2 = 1/2
