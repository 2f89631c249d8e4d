"""Aggregate a sweep: one row per configuration, metrics as mean and std over seeds."""
from __future__ import annotations

import csv
import math
import os
import statistics
from collections import defaultdict

from spectral_gan.metrics import registry
from spectral_gan.report.runs import Run

def metric_tags() -> list[str]:
    """The registry's ``metrics/...`` tags in column order, read at call time: a plugin metric
    registered after import (``metrics/feature_metrics.py``) is tabulated too."""
    return registry.tags()


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def short_labels(configs: list[str]) -> dict[str, str]:
    """Each configuration named by only the overrides that differ between configurations; a
    run's ``name=`` comes first, as its bare value."""
    tokens = {c: c.split(" ") for c in configs}
    common = set.intersection(*(set(t) for t in tokens.values())) if len(configs) > 1 else set()

    def label(c: str) -> str:
        varying = [t for t in tokens[c] if t not in common] or tokens[c]
        names = [t[len("name="):] for t in varying if t.startswith("name=")]
        return " ".join(names + [t for t in varying if not t.startswith("name=")])

    return {c: label(c) for c in configs}


def group(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.config].append(run)
    return dict(groups)


def table(runs: list[Run]) -> list[dict]:
    """Rows: config, seeds, diverged, steps/s, and for each metric present final and best."""
    present = [m for m in metric_tags() if any(m in r.scalars for r in runs)]
    rows = []
    for config, members in group(runs).items():
        row: dict = {"config": config, "seeds": len(members),
                     "diverged": sum(r.diverged for r in members),
                     "failed": sum(r.failed for r in members),
                     "incomplete": sum(r.incomplete for r in members),
                     "last_step": max((r.last_step for r in members), default=0)}
        row["steps_per_s"], row["steps_per_s_std"] = _mean_std([r.steps_per_second() for r in members])
        for metric in present:
            name = metric.split("/", 1)[1]
            bests = [registry.best_of(metric, (v for _, v in r.series(metric)))
                     for r in members if r.series(metric)]
            row[f"{name}_final"], row[f"{name}_final_std"] = _mean_std(finals(members, metric))
            row[f"{name}_best"], row[f"{name}_best_std"] = _mean_std(bests)
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _cell(mean: float, std: float) -> str:
    """``mean ± std``; a dash where nothing was logged, the mean alone where no spread exists."""
    if math.isnan(mean):
        return "–"
    return _fmt(mean) if math.isnan(std) else f"{_fmt(mean)} ± {_fmt(std)}"


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "(no runs with TensorBoard logs found)"
    metric_names = [k[:-len("_final")] for k in rows[0] if k.endswith("_final")]
    header = ["config", "seeds", "diverged", "failed", "incomplete", "last step", "steps/s"]
    header += [f"{m} final" for m in metric_names] + [f"{m} best" for m in metric_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = short_labels([r["config"] for r in rows])  # what varies; comparison.csv has it all
    for r in rows:
        cells = [labels[r["config"]], str(r["seeds"]), str(r["diverged"]), str(r.get("failed", 0)),
                 str(r.get("incomplete", 0)),
                 str(r["last_step"]),
                 _cell(r["steps_per_s"], r["steps_per_s_std"])]
        cells += [_cell(r[f"{m}_final"], r[f"{m}_final_std"]) for m in metric_names]
        cells += [_cell(r[f"{m}_best"], r[f"{m}_best_std"]) for m in metric_names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    keys = list(rows[0]) if rows else ["config"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


# Whole-network scalars plotted like the metrics (mean and band over seeds).
LIPSCHITZ = ("lipschitz/bound_layerwise", "lipschitz/grad_max")
# Per-layer groups: (tag prefix, y label, log scale); one plot each, one line per layer and
# configuration (first seed). The file is <prefix with / as _>per_layer.png.
PER_LAYER_GROUPS = (
    ("sigma/", "sigma of the raw weight (first seed)", True),
    ("sigma_eff/", "exact sigma of the normalized weight as a matrix", True),
    ("sigma_op/", "operator norm of the normalized convolution", True),
    ("condition/", "condition number of the normalized weight", True),
    ("grad_norm/d/", "gradient norm per D layer", True),
    ("grad_norm/g/", "gradient norm per G layer", True),
    ("drift/", "drift: RMS over channels of the batch mean of the layer output", False),
)


def _per_layer_plot(runs, groups, labels, prefix, ylabel, log_scale, out_dir, plt) -> str | None:
    tags = sorted({t for r in runs for t in r.scalars if t.startswith(prefix)})
    if not tags:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for config, members in groups.items():
        for tag in tags:
            series = members[0].series(tag)
            if series:
                ax.plot([s for s, _ in series], [v for _, v in series],
                        label=f"{labels[config]} {tag[len(prefix):]}", linewidth=0.8)
    ax.set_xlabel("generator step")
    ax.set_ylabel(ylabel)
    if log_scale:
        ax.set_yscale("log")
    ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    path = os.path.join(out_dir, f"{prefix.replace('/', '_')}per_layer.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(runs: list[Run], out_dir: str) -> list[str]:
    """Metric against step (mean with a band over seeds, one line per configuration), the
    Lipschitz bound and gradient lower bound likewise, and one plot per group of per-layer
    scalars (``PER_LAYER_GROUPS``). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    groups = group(runs)
    labels = short_labels(list(groups))
    tags = [m for m in metric_tags() if any(m in r.scalars for r in runs)] + ["loss/d"]
    tags += [t for t in LIPSCHITZ if any(t in r.scalars for r in runs)]
    for tag in tags:
        fig, ax = plt.subplots(figsize=(7, 4))
        for config, members in groups.items():
            by_step: dict[int, list[float]] = defaultdict(list)
            for r in members:
                for s, v in r.series(tag):
                    by_step[s].append(v)
            if not by_step:
                continue
            steps = sorted(by_step)
            mean = [statistics.fmean(by_step[s]) for s in steps]
            std = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
            ax.plot(steps, mean, label=labels[config])
            ax.fill_between(steps, [m - d for m, d in zip(mean, std)],
                            [m + d for m, d in zip(mean, std)], alpha=0.2)
        ax.set_xlabel("generator step")
        ax.set_ylabel(tag)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, f"{tag.replace('/', '_')}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    for prefix, ylabel, log_scale in PER_LAYER_GROUPS:
        path = _per_layer_plot(runs, groups, labels, prefix, ylabel, log_scale, out_dir, plt)
        if path:
            written.append(path)
    return written


def finals(members: list[Run], metric: str) -> list[float]:
    """Each seed's last value of ``metric`` (seeds that never logged it left out)."""
    values = [r.final(metric) for r in members]
    return [v for v in values if v is not None and math.isfinite(v)]


def pick_baseline(configs: list[str], text: str) -> str:
    """The one configuration whose overrides contain ``text`` (e.g. ``norm=sn``); a ValueError
    naming the candidates when none or several match."""
    tokens = set(text.split())
    exact = [c for c in configs if set(c.split()) >= tokens]
    if len(exact) > 1:  # norm=sn also matches "norm=sn norm.scale=2": prefer the fewest overrides
        fewest = min(len(c.split()) for c in exact)
        exact = [c for c in exact if len(c.split()) == fewest]
    if len(exact) != 1:
        raise ValueError(f"--baseline {text!r} matches {len(exact)} configurations; name one of: "
                         + "; ".join(configs))
    return exact[0]


def differences(runs: list[Run], baseline: str) -> list[dict]:
    """For each other configuration and each metric: mean(final) - mean(baseline's final) with
    its Welch interval (``significance.welch``) and whether it is beyond seed noise."""
    from spectral_gan.report.significance import welch

    groups = group(runs)
    present = [m for m in metric_tags() if any(m in r.scalars for r in runs)]
    out = []
    for config, members in groups.items():
        if config == baseline:
            continue
        row: dict = {"config": config}
        for metric in present:
            row[metric] = welch(finals(members, metric), finals(groups[baseline], metric))
        out.append(row)
    return out


def _signed(value: float) -> str:
    return f"{value:+.3g}"


def differences_markdown(rows: list[dict], baseline: str, labels: dict[str, str]) -> str:
    from spectral_gan.report.significance import METHOD

    if not rows:
        return f"(no configuration besides the baseline {baseline})"
    metrics = [k for k in rows[0] if k != "config"]
    header = ["config"] + [m.split("/", 1)[1] for m in metrics]
    lines = [f"Final value minus the baseline's ({labels.get(baseline, baseline)}), mean over seeds, "
             f"with the {METHOD} of the difference; **bold** where the interval excludes 0 "
             f"(beyond seed noise), n/a with fewer than 2 seeds on a side.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [labels.get(r["config"], r["config"])]
        for m in metrics:
            d = r[m]
            if d is None:
                cells.append("n/a")
                continue
            text = f"{_signed(d.diff)} [{_signed(d.low)}, {_signed(d.high)}]"
            cells.append(f"**{text}**" if d.beyond_noise else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def floors(runs: list[Run]) -> list[str]:
    """The finite-sample floors known for the logged metrics, one sentence each: reverse KL
    (a perfect generator's expected value at the run's mode and sample counts) and FID (biased
    upward at small sample counts: compare only at equal counts)."""
    from spectral_gan.report.significance import reverse_kl_floor

    notes = []
    if any("metrics/reverse_kl" in r.scalars for r in runs):
        seen = sorted({(k, n) for k, n in (_modes_and_samples(r) for r in runs) if k and n})
        for k, n in seen:
            notes.append(f"reverse_kl: a perfect generator's expected value at {k} modes and {n} "
                         f"samples is about (K-1)/(2N) = {reverse_kl_floor(k, n):.4f}; values and "
                         f"differences below it are sampling noise.")
    if any(t.startswith("metrics/fid") for r in runs for t in r.scalars):
        notes.append("fid*: biased upward at small sample counts (more so the fewer samples); "
                     "compare FIDs only at equal eval.num_samples.")
    return notes


def _modes_and_samples(run: Run) -> tuple[int | None, int | None]:
    """(number of modes, evaluation samples) from the run's saved config, when it has both."""
    cfg = run.saved_config()
    data, evaluation = cfg.get("data") or {}, cfg.get("eval") or {}
    modes = data.get("num_modes")
    if modes is None and "grid" in str(data.get("_target_", "")).lower():
        modes = 25
    try:
        return (int(modes) if modes else None,
                int(evaluation["num_samples"]) if evaluation.get("num_samples") else None)
    except (TypeError, ValueError):
        return None, None
