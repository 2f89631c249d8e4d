"""spectral_gan/norms/bidirectional.py: BSN (Lin, Sekar & Fanti 2021)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spectral_gan.norms import bidirectional_spectral_norm, spectral_norm
from tests.norms.weights import converge, sigma


@pytest.mark.parametrize("make,dim", [(lambda: nn.Conv2d(3, 8, 3), 0),
                                      (lambda: nn.ConvTranspose2d(6, 4, 4, 2, 1), 1)])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_bsn_matches_mean_of_both_directions(make, dim, scale):
    torch.manual_seed(0)
    layer = make()
    raw = layer.weight.detach().clone()
    bidirectional_spectral_norm(layer, scale=scale)
    w = converge(layer)
    s1, s2 = sigma(raw, dim), sigma(raw, 1 - dim)
    torch.testing.assert_close(w, scale * raw / ((s1 + s2) / 2), rtol=1e-3, atol=1e-6)


def test_bsn_on_linear_equals_sn():
    torch.manual_seed(0)
    a = nn.Linear(10, 7)
    b = nn.Linear(10, 7)
    b.load_state_dict(a.state_dict())
    bidirectional_spectral_norm(a)
    spectral_norm(b)
    torch.testing.assert_close(converge(a), converge(b), rtol=1e-4, atol=1e-6)


def test_bsn_learnable_scale_starts_at_c_instead_of_multiplying_by_it():
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
    b.load_state_dict(a.state_dict())
    bidirectional_spectral_norm(a, scale=2.0)
    bidirectional_spectral_norm(b, scale=2.0, learnable_scale="per_layer")
    assert b.parametrizations.weight[1].gamma.item() == 2.0
    torch.testing.assert_close(converge(a), converge(b))
