"""One GAN step written plainly (hinge or any loss of spectral_gan.losses, one D update on a real
and a fake batch, then one G update through a frozen D), for the cost scripts that time something
against the bare step (diagnostics_cost.py, sn_conv_cost.py)."""
from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from spectral_gan.norms import power_iteration_paused


def bare_gan_step(G, D, d_opt, g_opt, loss, reals) -> torch.Tensor:
    """One D update per real batch in ``reals`` (a tensor: one batch; a sequence: n_dis batches)
    and one G update; returns the last fake batch D was trained on."""
    reals = [reals] if isinstance(reals, torch.Tensor) else list(reals)
    n, dev = len(reals[0]), reals[0].device
    for real in reals:
        with torch.no_grad():
            fake = G(torch.randn(n, G.z_dim, device=dev))
        with parametrize.cached():
            ld = loss.d(D(real), D(fake))
            d_opt.zero_grad(set_to_none=True)
            ld.backward()
        d_opt.step()
    D.requires_grad_(False)
    with power_iteration_paused(D), parametrize.cached():  # G's update: D frozen, u, v kept
        lg = loss.g(D(G(torch.randn(n, G.z_dim, device=dev))))
        g_opt.zero_grad(set_to_none=True)
        lg.backward()
    g_opt.step()
    D.requires_grad_(True)
    return fake
