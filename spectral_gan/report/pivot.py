"""A sweep as a two-way table: one metric's final value, mean ± std over seeds, with one
override on the rows and another on the columns (e.g. norm x sn_setting for the SN paper's
robustness study, Miyato et al. 2018, Table 1 / Figure 1), and the same as a plot."""
from __future__ import annotations

import math
import os
import re
import statistics
from collections import defaultdict

from spectral_gan.metrics import registry
from spectral_gan.report.runs import Run

COLLAPSED = "health/collapsed"  # 1.0 at an evaluation whose samples had collapsed (training/gan_evaluation.py)
MISSING = "(default)"  # a run that did not override the key


def _natural(value: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", value)]


def values_of(runs: list[Run], key: str) -> list[str]:
    """The values ``key`` takes in the sweep, in natural order (A..F, 1e-4 < 2e-4, 2 < 10)."""
    return sorted({r.overrides.get(key, MISSING) for r in runs}, key=_natural)


def cells(runs: list[Run], rows: str, columns: str, metric: str) -> dict[tuple[str, str], dict]:
    """``(row value, column value) -> {"values": finals over seeds, "mean", "std", "runs",
    "collapsed", "diverged"}``. A run without the metric (diverged before its evaluation) counts
    in ``runs`` and ``diverged`` but adds no value."""
    grouped: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        grouped[(run.overrides.get(rows, MISSING), run.overrides.get(columns, MISSING))].append(run)
    out = {}
    for key, members in grouped.items():
        values = [v for v in (r.final(metric) for r in members) if v is not None and math.isfinite(v)]
        out[key] = {
            "values": values,
            "mean": statistics.fmean(values) if values else float("nan"),
            "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else float("nan")),
            "runs": len(members),
            "collapsed": sum(1 for r in members if (r.final(COLLAPSED) or 0.0) >= 0.5),
            "diverged": sum(1 for r in members if r.diverged),
        }
    return out


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return ""
    text = "–" if not cell["values"] else f"{cell['mean']:.3g} ± {cell['std']:.2g}"
    flags = []
    if cell["collapsed"]:
        flags.append(f"{cell['collapsed']}/{cell['runs']} collapsed")
    if cell["diverged"]:
        flags.append(f"{cell['diverged']}/{cell['runs']} diverged")
    return text + (f" ({', '.join(flags)})" if flags else "")


def markdown(runs: list[Run], rows: str, columns: str, metric: str) -> str:
    """The table: a row per value of ``rows``, a column per value of ``columns``."""
    table = cells(runs, rows, columns, metric)
    row_values, col_values = values_of(runs, rows), values_of(runs, columns)
    seeds = sorted({c["runs"] for c in table.values()})
    direction = "higher is better" if registry.higher_is_better(metric) else "lower is better"
    lines = [f"{metric} at the last evaluation ({direction}), mean ± std over "
             f"{'/'.join(map(str, seeds))} seeds; rows {rows}, columns {columns}.", "",
             f"| {rows} \\ {columns} | " + " | ".join(col_values) + " |",
             "|---|" + "---|" * len(col_values)]
    for rv in row_values:
        lines.append(f"| {rv} | " + " | ".join(_cell_text(table.get((rv, cv))) for cv in col_values) + " |")
    return "\n".join(lines)


def differences_markdown(runs: list[Run], rows: str, columns: str, metric: str, baseline: str) -> str:
    """Each row's difference from the ``baseline`` row (a value of ``rows``) in every column:
    mean over seeds with its Welch t interval (95%), bold when the interval excludes 0."""
    from spectral_gan.report.significance import METHOD, welch

    table = cells(runs, rows, columns, metric)
    row_values, col_values = values_of(runs, rows), values_of(runs, columns)
    if baseline not in row_values:
        raise ValueError(f"--baseline {rows}={baseline}: no such row; the rows are "
                         f"{', '.join(row_values)}")
    lines = [f"{metric}: each {rows} minus {rows}={baseline} in the same column, mean over seeds "
             f"with the {METHOD}; **bold**: beyond seed noise; n/a: fewer than two seeds a side.",
             "", f"| {rows} \\ {columns} | " + " | ".join(col_values) + " |",
             "|---|" + "---|" * len(col_values)]
    for rv in row_values:
        if rv == baseline:
            continue
        texts = []
        for cv in col_values:
            a, b = table.get((rv, cv)), table.get((baseline, cv))
            d = welch(a["values"], b["values"]) if a and b else None
            if d is None:
                texts.append("n/a")
                continue
            text = f"{d.diff:+.3g} [{d.low:+.3g}, {d.high:+.3g}]"
            texts.append(f"**{text}**" if d.beyond_noise else text)
        lines.append(f"| {rv} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def plot(runs: list[Run], rows: str, columns: str, metric: str, out_dir: str) -> str:
    """One line per value of ``rows`` over the values of ``columns`` (mean, error bar = std over
    seeds); a cell whose runs all collapsed is drawn as an open marker. Returns the file written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = cells(runs, rows, columns, metric)
    row_values, col_values = values_of(runs, rows), values_of(runs, columns)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, rv in enumerate(row_values):
        xs, means, stds = [], [], []
        for j, cv in enumerate(col_values):
            cell = table.get((rv, cv))
            if cell and cell["values"]:
                xs.append(j + (i - len(row_values) / 2) * 0.03)  # small offsets keep bars apart
                means.append(cell["mean"])
                stds.append(cell["std"])
        if xs:
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=2, label=rv, linewidth=1)
    ax.set_xticks(range(len(col_values)), col_values)
    ax.set_xlabel(columns)
    ax.set_ylabel(f"{metric} ({'higher' if registry.higher_is_better(metric) else 'lower'} is better)")
    ax.legend(title=rows, fontsize=7)
    fig.tight_layout()
    name = f"pivot_{metric.replace('/', '_')}_{rows}_by_{columns}.png"
    path = os.path.join(out_dir, re.sub(r"[^A-Za-z0-9_.-]", "_", name))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
