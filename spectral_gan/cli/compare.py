"""spectral-gan-compare SWEEP_DIR: turn a sweep into a verdict.

Reads the TensorBoard event files of every run under SWEEP_DIR (a multirun directory; a sweep
still running or with diverged runs is fine) and writes into it: comparison.md (table),
comparison.csv, and PNG plots (each metric against step with a band over seeds, one line per
configuration; the Lipschitz bound and gradient lower bound; per-layer sigma, sigma_eff, sigma_op,
condition numbers, gradient norms of D and G, drift). Prints the table. Runs that differ only by seed
form one configuration; metrics are mean ± std over seeds, final and best.
"""
from __future__ import annotations

import argparse
import os
import sys

from spectral_gan.report.compare import markdown, table, write_csv, write_plots
from spectral_gan.report.runs import read_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-gan-compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.sweep_dir):
        print(f"error: {args.sweep_dir} is not a directory; pass a sweep directory such as "
              f"outputs/train/multiruns/<date_time>", file=sys.stderr)
        return 2
    runs = read_sweep(args.sweep_dir)
    if not runs:
        print(f"error: no runs with TensorBoard logs (tb/) under {args.sweep_dir}", file=sys.stderr)
        return 2
    rows = table(runs)
    text = markdown(rows)
    with open(os.path.join(args.sweep_dir, "comparison.md"), "w") as f:
        f.write(f"# Comparison of {len(runs)} runs in {len(rows)} configurations\n\n{text}\n")
    write_csv(rows, os.path.join(args.sweep_dir, "comparison.csv"))
    plots = [] if args.no_plots else write_plots(runs, args.sweep_dir)
    print(text)
    print(f"\nwrote comparison.md, comparison.csv and {len(plots)} plots to {args.sweep_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
