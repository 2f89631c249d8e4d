"""The first generator steps' (loss/d, loss/g) of a run, exactly, as JSON: the behaviour check of a
refactoring (issue 33: the default experiment's first 30 pairs bit-identical before and after).

    python scripts/loss_trace.py --steps 30 > before.json      # on the old commit
    python scripts/loss_trace.py --steps 30 > after.json       # on the new one
    cmp before.json after.json

Trains in this process with ``trainer.deterministic=true``, logging every step to CSV, no
evaluation; the overrides after ``--`` choose another experiment (default: the default one).
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

from spectral_gan.cli.train import compose_train_config  # noqa: E402
from spectral_gan.training.run import train  # noqa: E402


def loss_trace(steps: int, overrides: list[str], run_dir: str) -> list[list[float]]:
    cfg = compose_train_config([*overrides, f"steps={steps}", "log_every=1", "debug=quiet",
                                "eval.classifier=false", "logger=csv", "trainer.deterministic=true"],
                               run_dir)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train(cfg)
    with open(os.path.join(run_dir, "csv", "metrics.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r.get("loss/d")]
    return [[int(float(r["step"])), float(r["loss/d"]), float(r["loss/g"])] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("overrides", nargs="*", help="experiment and overrides (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = loss_trace(args.steps, args.overrides or ["experiment=mnist5k_sn"],
                           os.path.join(tmp, "run"))
    print("[" + ",\n".join(json.dumps(row) for row in trace) + "]")


if __name__ == "__main__":
    main()
