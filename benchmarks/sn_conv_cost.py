"""Step time of norm.weight=sn_conv against sn on the default experiment's networks (DCGAN width
32, 32x32, batch 64, hinge, Adam, n_dis 1), interleaved in one process (one step of each per
round), median ratio over rounds after 3 warm-up rounds.

    PYTHONPATH=. python benchmarks/sn_conv_cost.py --rounds 15
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bare_step import bare_gan_step  # benchmarks/ (the script's folder) is on sys.path
from spectral_gan.losses import get_loss
from spectral_gan.models import DCGANDiscriminator, DCGANGenerator
from spectral_gan.norms import NormHook


def make(norm: str):
    torch.manual_seed(0)
    G = DCGANGenerator((1, 32, 32), ch=32)
    D = DCGANDiscriminator((1, 32, 32), ch=32, norm=NormHook(norm))
    opts = [torch.optim.Adam(m.parameters(), 2e-4, betas=(0.0, 0.9)) for m in (D, G)]
    return G, D, opts


def step(G, D, opts, loss, real) -> float:
    t = time.perf_counter()
    bare_gan_step(G, D, *opts, loss, real)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loss = get_loss("hinge")
    real = torch.rand(64, 1, 32, 32) * 2 - 1
    nets = {n: make(n) for n in ("sn", "sn_conv")}
    times = {n: [] for n in nets}
    for _ in range(args.rounds + 3):
        for n, (G, D, opts) in nets.items():
            times[n].append(step(G, D, opts, loss, real))
    med = {n: statistics.median(v[3:]) for n, v in times.items()}
    ratios = [c / s for s, c in zip(times["sn"][3:], times["sn_conv"][3:])]
    print(f"sn {1000 * med['sn']:.0f} ms, sn_conv {1000 * med['sn_conv']:.0f} ms per step; "
          f"median ratio sn_conv/sn {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
