"""Class-conditional parts: conditional batch norm for generators, the projection discriminator.

Generator: conditional batch normalization (de Vries et al., "Modulating early visual processing
by language", NeurIPS 2017; Dumoulin et al., "A Learned Representation for Artistic Style", ICLR
2017): BatchNorm without its own affine transform, then a gain and a bias chosen by the class, each
a row of a class embedding. SNGAN's conditional ResNet generator puts it in place of every
BatchNorm (Miyato et al., ICLR 2018; Miyato & Koyama, ICLR 2018).

Discriminator: the projection discriminator (Miyato & Koyama, "cGANs with Projection
Discriminator", ICLR 2018, Eq. 3): ``D(x, y) = psi(phi(x)) + <V_y, phi(x)>``, where ``phi`` is
everything before the final dense layer ``psi`` and ``V`` (num_classes x feature dim) a class
embedding. ``V`` is a weight of the logit layer, so it is built through the norm hook like every
other discriminator weight (``norm.wrap(..., "embed", output=True)``): SN, BSN, OSN, MSN (which
leaves the logit layer uncentered) and learnable scales apply to it as to the dense head.

Labels are integer class indices, one per sample, from ``datamodule.num_classes`` classes.
Unconditional models ignore labels, so callers may pass them whenever they have them.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.models.common import initialize
from spectral_gan.norms import NormHook

CONDITIONAL_D = ("none", "projection")
CONDITIONAL_G_MODELS = "dcgan|resnet"  # the generators that take conditional=true


def check_conditional_d(value: object) -> str:
    """``discriminator.conditional``, validated: one of :data:`CONDITIONAL_D`."""
    if not isinstance(value, str) or value not in CONDITIONAL_D:
        raise ConfigError(f"unknown discriminator.conditional {value!r}; valid options are: "
                          f"{', '.join(CONDITIONAL_D)}")
    return value


def check_conditional_g(value: object) -> bool:
    """``generator.conditional``, validated: a boolean."""
    if not isinstance(value, bool):
        raise ConfigError(f"generator.conditional must be true or false, got {value!r}")
    return value


def _check_num_classes(num_classes: object, what: str, off: str) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(
            f"a {what} needs labeled data; the data gives num_classes={num_classes!r} (at least 2 "
            f"classes are needed): use a labeled dataset (e.g. data=cifar10) or set {off}")
    return num_classes


def generator_classes(conditional: object, num_classes: object) -> int | None:
    """The generator's class count: None when unconditional (``num_classes`` then ignored)."""
    if not check_conditional_g(conditional):
        return None
    return _check_num_classes(num_classes, "conditional generator", "generator.conditional=false")


def discriminator_classes(conditional: object, num_classes: object) -> int | None:
    """The discriminator's class count: None when ``conditional=none`` (``num_classes`` ignored)."""
    if check_conditional_d(conditional) == "none":
        return None
    return _check_num_classes(num_classes, f"{conditional} discriminator (Miyato & Koyama 2018)",
                              "discriminator.conditional=none")


def check_labels(y: torch.Tensor | None, batch: int, who: str) -> torch.Tensor:
    """``y`` as a conditional model takes it: one class index per sample of a batch of ``batch``.

    The shape is checked because a single label would otherwise broadcast over the batch."""
    if y is None:
        raise ValueError(f"this {who} is class-conditional: pass labels y (one class index per "
                         f"sample), e.g. model(x, y)")
    if y.shape != (batch,):
        raise ValueError(f"this {who} takes one class index per sample: labels of shape "
                         f"({batch},), got {tuple(y.shape)}")
    return y


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose per-channel gain and bias are chosen by the class (de Vries et al. 2017;
    Dumoulin et al. 2017): ``gamma_y * BN(x) + beta_y``, BN without affine parameters.

    ``gamma`` and ``beta`` are ``nn.Embedding`` tables (num_classes x num_features), initialized
    to 1 and 0, so that at initialization every class gets what a plain BatchNorm2d starts with.
    They are set without drawing from the random stream, so a conditional generator built under a
    seed has the same other weights as its unconditional twin. Running statistics are shared by
    all classes (the normalization is BatchNorm's; only the affine part is per class).
    """

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.num_classes = num_features, num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gamma = nn.Embedding.from_pretrained(torch.ones(num_classes, num_features), freeze=False)
        self.beta = nn.Embedding.from_pretrained(torch.zeros(num_classes, num_features), freeze=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        y = check_labels(y, x.shape[0], "batch norm")
        shape = (x.shape[0], self.num_features) + (1,) * (x.dim() - 2)
        return self.bn(x) * self.gamma(y).view(shape) + self.beta(y).view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_classes={self.num_classes}"


def run_layers(layers: Iterable[nn.Module], h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Apply ``layers`` in order, handing the labels to the conditional batch norms among them
    (an ``nn.Sequential`` cannot pass a second argument)."""
    for layer in layers:
        h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
    return h


def batch_norm_2d(num_features: int, num_classes: int | None, eps: float = 1e-5) -> nn.Module:
    """A generator's BatchNorm2d: conditional when ``num_classes`` is given."""
    if num_classes is None:
        return nn.BatchNorm2d(num_features, eps=eps)
    return ConditionalBatchNorm2d(num_features, num_classes, eps=eps)


def batch_norm(bn: nn.Module, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``bn(h)``, or ``bn(h, y)`` for a conditional batch norm."""
    return bn(h, y) if isinstance(bn, ConditionalBatchNorm2d) else bn(h)


class ProjectionHead(nn.Module):
    """The class term of a projection discriminator (Miyato & Koyama, ICLR 2018, Eq. 3):
    ``<V_y, h>`` for features ``h = phi(x)`` (B, feature_dim); D adds it to its dense head's logit.

    ``embed`` is V, an ``nn.Embedding(num_classes, feature_dim)`` built through the norm hook
    under the name ``embed`` with ``output=True`` (a weight of the logit layer: MSN does not
    center it, the drift monitor skips it). ``init`` as for the other layers, except that
    ``default`` takes Glorot uniform, the authors' initialization of V (pfnet-research/
    sngan_projection), instead of PyTorch's N(0, 1) for embeddings, whose spectral norm grows
    with the table's size.

    For a fixed y the last stage ``h -> psi(h) + <V_y, h>`` is linear in h with weight
    ``w + V_y``, whose norm is at most ``k(head) + ||V_y|| <= k(head) + sigma(V)``: the
    discriminators' ``lipschitz_bound`` adds ``k(embed)`` to the head's constant.
    """

    def __init__(self, num_classes: int, feature_dim: int, norm: NormHook, init: str = "default"
                 ) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, feature_dim
        embed = nn.Embedding(num_classes, feature_dim)
        if init == "default":
            nn.init.xavier_uniform_(embed.weight)
        else:
            initialize(embed, init)
        self.embed = norm.wrap(embed, "embed", output=True)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.embed(y) * h).sum(dim=1)

    def constant(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """What the projection adds to the logit layer's Lipschitz constant: ``k(embed)``."""
        return k(self.embed)


def projection_head(conditional: str, num_classes: int | None, feature_dim: int, norm: NormHook,
                    init: str) -> ProjectionHead | None:
    """The discriminator's :class:`ProjectionHead` for ``conditional=projection``, else None."""
    if conditional != "projection":
        return None
    return ProjectionHead(num_classes, feature_dim, norm, init)


def logit(head: nn.Module, projection: ProjectionHead | None, h: torch.Tensor,
          y: torch.Tensor | None, who: str) -> torch.Tensor:
    """``psi(h)`` (B,), plus ``<V_y, h>`` for a projection discriminator."""
    out = head(h).squeeze(1)
    if projection is None:
        return out
    return out + projection(h, check_labels(y, h.shape[0], who))


def logit_constant(k: Callable[[nn.Module], torch.Tensor], head: nn.Module,
                   projection: ProjectionHead | None) -> torch.Tensor:
    """The Lipschitz constant of the logit layer for a fixed label: ``k(head)``, plus
    ``k(embed)`` for a projection discriminator (``||w + V_y|| <= ||w|| + sigma(V)``)."""
    out = k(head)
    return out if projection is None else out + projection.constant(k)


def _labels_for(y: torch.Tensor, batch: int) -> torch.Tensor:
    if y.dim() == 0:
        return y.expand(batch)
    n = y.shape[0]
    if n == batch:
        return y
    if y.dim() == 1 and n > 0 and batch % n == 0:
        return y.repeat(batch // n)
    raise ValueError(f"labels bound by bind_labels have length {n}, but D was called on a batch "
                     f"of {batch}: bind one label, one per sample, or one per sample of each "
                     f"of several equal stacked parts")


class LabeledDiscriminator(nn.Module):
    """A class-conditional discriminator with its labels bound: ``forward(x) = D(x, y)``.

    For code that calls ``model(x)``: ``norms.lipschitz.lipschitz_report``,
    ``norms.monitor.activation_drift`` and ``spectral_report`` (they find the layers through
    ``modules()``, which reach D's, and ``lipschitz_bound`` delegates to D's). ``y`` may be one
    label (0-d, for every sample), one per sample, or one per sample of each of k equal parts
    stacked along the batch, then repeated k times: ``lipschitz_report`` stacks ``real[:n]``,
    ``fake[:n]`` and their interpolations, so bind the n labels of those samples (n =
    ``min(samples, len(real), len(fake))``); the i-th real, fake and interpolated sample then
    all get ``y[i]`` (the report's figures are for D at a fixed label). ``activation_drift``
    passes each batch on its own: bind each batch's labels and average the reports, or bind the
    labels of one batch for all.

    The wrapper starts in D's training mode (diagnostics restore the mode they found) and holds no
    state of its own: make one where it is needed, never save it.
    """

    def __init__(self, discriminator: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.y = y
        self.training = discriminator.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x, _labels_for(self.y, x.shape[0]))

    def lipschitz_bound(self, k: Callable[[nn.Module], torch.Tensor]) -> torch.Tensor:
        """D's own bound (``norms.lipschitz``); for a projection D it holds for every label."""
        return self.discriminator.lipschitz_bound(k)


def bind_labels(discriminator: nn.Module, y: torch.Tensor) -> nn.Module:
    """``discriminator`` with labels ``y`` bound, as a one-argument module
    (:class:`LabeledDiscriminator`: its docstring says which shapes of ``y`` it takes)."""
    return LabeledDiscriminator(discriminator, y)
