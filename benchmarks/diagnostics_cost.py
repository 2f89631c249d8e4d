"""Cost of the discriminator diagnostics (monitor.*) against a training step, on the default
experiment's networks (experiment=mnist5k_sn: DCGAN width 32, SN, 32x32, batch 64, hinge, Adam,
n_dis 1).

Method: one process, 2 threads; each round times one bare-loop training step (a D update inside
``parametrize.cached()`` on real and fake, then a G update with the power iteration paused) and
then each diagnostic once, on that step's batches and gradients. Medians over ``--rounds`` rounds
after 3 warm-up rounds. A diagnostic's share of training time at cadence N is its time / (N * step).

    PYTHONPATH=. python benchmarks/diagnostics_cost.py --rounds 15
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
from spectral_gan.norms.lipschitz import LayerConstants, lipschitz_report
from spectral_gan.norms.monitor import (activation_drift, condition_numbers, layer_grad_norms,
                                        spectral_report)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--norm", default="sn")
    parser.add_argument("--cadence", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (1, 32, 32)
    G = DCGANGenerator(shape, ch=32)
    D = DCGANDiscriminator(shape, ch=32, norm=NormHook(args.norm))
    loss = get_loss("hinge")
    d_opt = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    g_opt = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    constants = LayerConstants(2)
    real = torch.rand(64, *shape) * 2 - 1

    def step():
        return bare_gan_step(G, D, d_opt, g_opt, loss, real)

    diagnostics = {
        "sigma/ (spectral_report, every log_every)": lambda fake: spectral_report(D),
        "svd: sigma_eff/ + condition/": lambda fake: condition_numbers(D),
        "lipschitz: bound_layerwise + grad_max + sigma_op/": lambda fake: lipschitz_report(
            D, real, fake, constants, 16),
        "layer stats: grad_norm/d/, grad_norm/g/": lambda fake: (layer_grad_norms(D, "grad_norm/d"),
                                                                 layer_grad_norms(G, "grad_norm/g")),
        "layer stats: drift/": lambda fake: activation_drift(D, [real, fake]),
    }
    times: dict[str, list[float]] = {"step": [], **{k: [] for k in diagnostics}}
    for r in range(args.rounds + 3):
        t = time.perf_counter()
        fake = step()
        times["step"].append(time.perf_counter() - t)
        for name, fn in diagnostics.items():
            t = time.perf_counter()
            fn(fake)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v[3:]) for k, v in times.items()}
    print(f"norm={args.norm}, {args.threads} threads, {args.rounds} rounds, medians")
    print(f"| what | ms per call | share of training at cadence {args.cadence} |")
    print("|---|---|---|")
    print(f"| training step (D + G update) | {1000 * med['step']:.1f} | - |")
    for name in diagnostics:
        share = med[name] / (args.cadence * med["step"])
        print(f"| {name} | {1000 * med[name]:.1f} | {100 * share:.2f}% |")


if __name__ == "__main__":
    main()
