"""The first steps of a GAN over seeds: does the discriminator win outright?

    python scripts/early_dynamics.py --seeds 0-3 --steps 200 -- experiment=mnist5k_sn
    python scripts/early_dynamics.py --seeds 0-3 -- experiment=mnist5k_sn \\
        'optimizer.g.betas=[0.5,0.999]' 'optimizer.d.betas=[0.5,0.999]'

Trains each seed for --steps generator steps in this process (no evaluation, CSV logging every
--log-every steps) and prints, per seed, the lowest `loss/d`, how many log steps had the
discriminator saturated (`loss/d` below 0.02 with its gradient norm below 0.01: with the hinge
loss, every real logit above 1 and every fake one below -1, so D learns nothing) and the
generator's sample diversity at the end as a fraction of the data's. This is how the default
experiment's optimizer was chosen (issue #12; docs/results.md has the table). Set
OMP_NUM_THREADS to fix the thread count.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "scripts"))

from check_default import parse_seeds  # noqa: E402

from spectral_gan.training import health  # noqa: E402
from spectral_gan.cli.train import compose_train_config  # noqa: E402
from spectral_gan.training.run import train  # noqa: E402

SATURATED_LOSS, SATURATED_GRAD = 0.02, 0.01


def early_run(seed: int, steps: int, log_every: int, overrides: list[str], run_dir: str) -> dict:
    cfg = compose_train_config([*overrides, f"seed={seed}", f"steps={steps}", f"log_every={log_every}",
                                "debug=quiet", "eval.classifier=false", "logger=csv"], run_dir)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = train(cfg)
    with open(os.path.join(run_dir, "csv", "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    loss = [float(r["loss/d"]) for r in rows if r.get("loss/d")]
    grad = [float(r["grad_norm/d"]) for r in rows if r.get("loss/d")]
    diversity = [float(r["health/sample_diversity"]) for r in rows if r.get("health/sample_diversity")]
    return {"seed": seed, "min_loss_d": round(min(loss), 4),
            "saturated_logs": sum(a < SATURATED_LOSS and b < SATURATED_GRAD for a, b in zip(loss, grad)),
            "final_diversity": round(diversity[-1], 3) if diversity else None,
            "collapsed": result["health"], "loss_d": [round(v, 3) for v in loss]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-3")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="the experiment and its overrides (after --)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in parse_seeds(args.seeds):
            row = early_run(seed, args.steps, args.log_every, args.overrides,
                            os.path.join(tmp, f"seed{seed}"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    mins = [r["min_loss_d"] for r in rows]
    print(f"\n{' '.join(args.overrides)}: lowest loss/d per seed {mins}; seeds with D saturated "
          f"at some log step: {sum(r['saturated_logs'] > 0 for r in rows)} of {len(rows)}; "
          f"saturated log steps in all {sum(r['saturated_logs'] for r in rows)} "
          f"(of {len(rows) * (args.steps // args.log_every)})")


if __name__ == "__main__":
    main()
