"""spectral-gan-compare SWEEP_DIR: turn a sweep into a verdict.

Reads the TensorBoard event files of every run under SWEEP_DIR (a multirun directory; a sweep
still running or with diverged runs is fine) and writes into it: comparison.md (table),
comparison.csv, and PNG plots (each metric against step with a band over seeds, one line per
configuration; the Lipschitz bound and gradient lower bound; per-layer sigma, sigma_eff, sigma_op,
condition numbers, gradient norms of D and G, drift). Prints the table. Runs that differ only by seed
form one configuration; metrics are mean ± std over seeds, final and best.

    spectral-gan-compare DIR --pivot norm sn_setting [--metric metrics/fid_classifier]

adds two-way tables to comparison.md (a row per value of the first override, a column per value
of the second; the metric's final value, mean ± std over seeds, with collapsed/diverged counts)
and one plot per metric (pivot_<metric>_<rows>_by_<columns>.png): the layout of the SN paper's
robustness study (settings A-F x normalizations).

    spectral-gan-compare DIR --baseline norm=sn

adds, for every other configuration and metric, the difference of its final value from the
baseline configuration's with a Welch t interval over seeds (95%), marking the differences beyond
seed noise; the table ends with each metric's known finite-sample floor (reverse KL of a perfect
generator at the run's mode and sample counts; FID's small-sample bias).
"""
from __future__ import annotations

import argparse
import os
import sys

from spectral_gan.report import pivot
from spectral_gan.report.compare import (metric_tags, differences, differences_markdown, floors,
                                         group, markdown, pick_baseline, short_labels, table,
                                         write_csv, write_plots)
from spectral_gan.report.runs import read_sweep
from spectral_gan.runs.status import read_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spectral-gan-compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--pivot", nargs=2, metavar=("ROWS", "COLUMNS"),
                        help="two overrides (e.g. norm sn_setting): a two-way table per metric")
    parser.add_argument("--metric", action="append", default=None,
                        help="metric tag(s) for --pivot (default: every metrics/... tag logged)")
    parser.add_argument("--baseline", metavar="OVERRIDES",
                        help="the configuration to compare every other one with, by its "
                             "overrides (e.g. 'norm=sn'): differences with Welch intervals; "
                             "with --pivot ROWS COLUMNS, ROWS=<value> names the pivot's "
                             "baseline row, compared in every column")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.sweep_dir):
        print(f"error: {args.sweep_dir} is not a directory; pass a sweep directory such as "
              f"outputs/train/multiruns/<date_time>", file=sys.stderr)
        return 2
    runs = read_sweep(args.sweep_dir)
    if not runs:
        print(f"error: no runs with TensorBoard logs (tb/) under {args.sweep_dir}", file=sys.stderr)
        return 2
    for run in runs:
        for path, at in run.damaged.items():
            print(f"warning: {path} is truncated at byte {at} of {os.path.getsize(path)} (a run "
                  f"killed mid-write, or a copy cut short): what it logged after that is lost",
                  file=sys.stderr)
        if run.failed:
            reason = (read_status(run.path) or {}).get("reason") or "see its status.json"
            print(f"warning: {run.path} failed ({reason}); its row counts it under 'failed'",
                  file=sys.stderr)
        if run.incomplete:
            print(f"warning: {run.path} logged up to generator step {run.last_step} of "
                  f"{run.expected_steps} (crashed, killed, still running, or a truncated event "
                  f"file); its row counts it under 'incomplete' and its metrics are the last "
                  f"logged", file=sys.stderr)
    pivots = []
    if args.pivot:
        pivots = _pivot_metrics(runs, args.pivot, args.metric)
        if isinstance(pivots, str):
            print(f"error: {pivots}", file=sys.stderr)
            return 2
    rows = table(runs)
    text = markdown(rows)
    pivot_baseline = None
    if args.pivot and args.baseline and args.baseline.partition("=")[0] == args.pivot[0]:
        pivot_baseline = args.baseline.partition("=")[2]  # a row of the pivot tables
    if args.baseline and pivot_baseline is None:
        configs = list(group(runs))
        try:
            baseline = pick_baseline(configs, args.baseline)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        text += "\n\n" + differences_markdown(differences(runs, baseline), baseline,
                                               short_labels(configs))
    notes = floors(runs)
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    for metric in pivots:
        text += "\n\n" + pivot.markdown(runs, *args.pivot, metric)
        if pivot_baseline is not None:
            try:
                text += "\n\n" + pivot.differences_markdown(runs, *args.pivot, metric, pivot_baseline)
            except ValueError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
    with open(os.path.join(args.sweep_dir, "comparison.md"), "w") as f:
        f.write(f"# Comparison of {len(runs)} runs in {len(rows)} configurations\n\n{text}\n")
    write_csv(rows, os.path.join(args.sweep_dir, "comparison.csv"))
    plots = [] if args.no_plots else write_plots(runs, args.sweep_dir)
    if not args.no_plots:
        plots += [pivot.plot(runs, *args.pivot, metric, args.sweep_dir) for metric in pivots]
    print(text)
    print(f"\nwrote comparison.md, comparison.csv and {len(plots)} plots to {args.sweep_dir}")
    return 0


def _pivot_metrics(runs, keys: list[str], metrics: list[str] | None) -> list[str] | str:
    """The metrics to pivot, or an error message naming what was wrong."""
    overridden = sorted({k for r in runs for k in r.overrides})
    for key in keys:
        if not any(key in r.overrides for r in runs):
            return (f"--pivot {key}: no run of this sweep overrides {key!r}; overridden here: "
                    f"{', '.join(overridden) or '(nothing)'}")
    logged = [m for m in metric_tags() if any(m in r.scalars for r in runs)]
    if metrics is None:
        return logged or "--pivot: no run of this sweep logged a metrics/... tag (was eval off?)"
    for metric in metrics:
        if metric not in logged:
            return f"--metric {metric}: not logged by any run here; logged: {', '.join(logged) or '(none)'}"
    return metrics


if __name__ == "__main__":
    sys.exit(main())
