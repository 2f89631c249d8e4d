"""Class balance of the EMA generator against the trained (raw) one, per run of a check.

    python scripts/ema_vs_raw.py outputs/check_default/<date_time>
    python scripts/ema_vs_raw.py outputs/check_default/<date_time> --runs seed1,seed6

For each run directory (seed0, seed1, ...) under the check's root: the per-digit fractions of
2,000 samples, as the digit classifier assigns them (devtools/digit_quality.py), of
the final checkpoint's EMA weights, of its raw generator, and of the raw generator of every
periodic checkpoint (gen_step_*.ckpt, or gen_step=*.ckpt of runs before issue 16). This is how the default's EMA decay was chosen (issue
#12, docs/results.md): with decay 0.999 from step 1000 of 1600, the EMA still held 55% of the
step-1000 copy and inherited its under-drawn 8s, while the raw step-1600 generators were
balanced.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from devtools.digit_quality import CLASS_MAX, CLASS_MIN, evaluate_digits  # noqa: E402


def row(label: str, ckpt: str, weights: str) -> str:
    q = evaluate_digits(ckpt, weights=weights)
    f = q.class_fractions
    ok = "yes" if all(CLASS_MIN <= x <= CLASS_MAX for x in f) else "**no**"
    return (f"| {label} | {q.gen_step} | {weights} | {' '.join(f'{100 * x:.1f}' for x in f)} | "
            f"{100 * min(f):.1f}%-{100 * max(f):.1f}% | {ok} | {q.is_classifier:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="a check-default root (holds seed0/, seed1/, ...)")
    parser.add_argument("--runs", default=None, help="comma-separated run directory names")
    args = parser.parse_args()
    names = (args.runs.split(",") if args.runs else
             sorted(d for d in os.listdir(args.root) if os.path.isdir(os.path.join(args.root, d))))
    print("| run | step | weights | % of samples per digit 0-9 | min-max | 4-16% | classifier IS |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        ckpts = os.path.join(args.root, name, "checkpoints")
        last = os.path.join(ckpts, "last.ckpt")
        if not os.path.exists(last):
            continue
        print(row(name, last, "ema"), flush=True)
        print(row(name, last, "raw"), flush=True)
        for periodic in sorted(glob.glob(os.path.join(ckpts, "gen_step_*.ckpt"))
                               + glob.glob(os.path.join(ckpts, "gen_step=*.ckpt"))):
            print(row(name, periodic, "raw"), flush=True)


if __name__ == "__main__":
    main()
