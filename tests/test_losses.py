import math

import pytest
import torch

from spectral_gan.errors import ConfigError
from spectral_gan.losses import LOSSES, get_loss

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.5])


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("name,d_expected,g_expected", [
    # hinge: mean relu(1 - real) = (0 + 0.5 + 2)/3; mean relu(1 + fake) = (0 + 1 + 2.5)/3
    ("hinge", 2.5 / 3 + 3.5 / 3, -(-0.5) / 3),
    ("ns", (sp(-2) + sp(-0.5) + sp(1)) / 3 + (sp(-2) + sp(0) + sp(1.5)) / 3,
     (sp(2) + sp(0) + sp(-1.5)) / 3),
    ("wgan", (-0.5 / 3) - (1.5 / 3), 0.5 / 3),
    # lsgan: mean (real-1)^2 = (1 + 0.25 + 4)/3; mean fake^2 = (4 + 0 + 2.25)/3
    ("lsgan", 5.25 / 3 + 6.25 / 3, (9 + 1 + 0.25) / 3),
])
def test_loss_values(name, d_expected, g_expected):
    loss = get_loss(name)
    assert float(loss.d(REAL, FAKE)) == pytest.approx(d_expected, rel=1e-6)
    assert float(loss.g(FAKE)) == pytest.approx(g_expected, rel=1e-6)


def test_losses_are_differentiable_and_point_the_right_way():
    inside = torch.tensor([0.1, 0.4, 0.8])  # logits between LSGAN's targets 0 and 1
    for loss in LOSSES.values():
        real = inside.clone().requires_grad_()
        fake = inside.clone().requires_grad_()
        loss.d(real, fake).backward()
        assert (real.grad <= 0).all() and (fake.grad >= 0).all(), loss.name  # D: raise real, lower fake
        fake_g = inside.clone().requires_grad_()
        (loss.g(fake_g, inside) if loss.relativistic else loss.g(fake_g)).backward()
        assert (fake_g.grad <= 0).all(), loss.name  # G: raise D(fake)


def test_unknown_loss_lists_valid_ones():
    with pytest.raises(ConfigError, match="hinge, ns, wgan, lsgan, rpgan"):
        get_loss("bogus")
