"""Tables of docs/results.md generated from the studies' data: `make results`.

    python scripts/results.py render [--doc F] [--only STUDY]  # rewrite docs/results.md's generated sections
    python scripts/results.py check [--doc F] [--only STUDY]   # exit 1 when the page and the data disagree
    python scripts/results.py collect SWEEP_DIR # per-seed [modes, high quality, reverse KL] as JSON

Each study is one file in docs/results/ (per-run numbers, the commands, where and when they ran).
Each of its tables becomes the text between `<!-- data:<study>:<table>:start -->` and
`<!-- data:<study>:<table>:end -->` in docs/results.md. A table is one of two kinds:

- ``"kind": "seeds"`` (the default): rows of per-seed values of the study's (or the table's own)
  ``metrics``; rendered as mean ± sample std over seeds, the per-seed values, each row's
  difference from the table's ``baseline`` row with a Welch t interval (95%; bold where it
  excludes 0, i.e. beyond seed noise) and the metric's finite-sample floor.
- ``"kind": "table"``: one run (or one published number) per cell, for screens of one seed,
  reference rows from papers and per-step traces: ``columns`` (each a ``name`` and a Python
  ``format``, e.g. ``"{:.1%}"``; a list cell is formatted as ``format.format(*cell)``, a string
  cell is written as it is, ``null`` is empty, ``{"v": x, "bold": true}`` is bold) and ``rows``.
  Optional ``intro`` and ``outro`` text go before and after the table.

Prose around the sections is written by hand and must keep to what they show.
"""
from __future__ import annotations

import glob
import json
import os
import statistics
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from devtools.doc_sections import markers  # noqa: E402
from spectral_gan.report.significance import METHOD, reverse_kl_floor, welch  # noqa: E402

DATA = os.path.join(REPO, "docs", "results")
RESULTS = os.path.join(REPO, "docs", "results.md")


# digits after the point per metric format of a "seeds" table ("percent" is shown x100 with %)
DECIMALS = {"percent": 1, "count": 1, "kl": 3, "score": 2, "fid": 1, "integer": 0}


def _fmt(value: float, kind: str, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if kind == "percent":
        return f"{value * 100:{sign}.1f}"
    return f"{value:{sign}.{DECIMALS[kind]}f}"


def _value(value: float, kind: str) -> str:
    """One run's value: counts as integers, the rest as :func:`_fmt` with the unit."""
    if kind == "count" and float(value).is_integer():
        return str(int(value))
    return f"{_fmt(value, kind)}{_unit(kind)}"


def _unit(kind: str) -> str:
    return "%" if kind == "percent" else ""


def _columns(row: dict, n_metrics: int) -> list[list[float]] | None:
    values = row.get("values")
    if not isinstance(values, list):
        return None
    return [[float(v[i]) for v in values] for i in range(n_metrics)]


def _summary(row: dict, n_metrics: int) -> tuple[int, list[tuple[float, float]]]:
    cols = _columns(row, n_metrics)
    if cols is None:
        return row.get("seeds", 5), [tuple(x) for x in row["summary"]]
    return len(cols[0]), [(statistics.fmean(c), statistics.stdev(c) if len(c) > 1 else 0.0)
                          for c in cols]


def _cell(value, fmt: str) -> str:
    if isinstance(value, dict):
        text = _cell(value["v"], fmt)
        return f"**{text}**" if value.get("bold") and text else text
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return fmt.format(*value)
    return fmt.format(value)


def render_plain(table: dict) -> str:
    """A ``"kind": "table"`` table: its cells formatted by their column, nothing computed."""
    columns = table["columns"]
    lines = ["| " + " | ".join(c["name"] for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in table["rows"]:
        if len(row) != len(columns):
            raise SystemExit(f"table {table['name']!r}: a row has {len(row)} cells for "
                             f"{len(columns)} columns: {row}")
        lines.append("| " + " | ".join(_cell(v, c.get("format", "{}"))
                                       for v, c in zip(row, columns)) + " |")
    parts = [table["intro"]] if table.get("intro") else []
    parts.append("\n".join(lines))
    if table.get("outro"):
        parts.append(table["outro"])
    return "\n\n".join(parts)


def render_table(study: dict, table: dict) -> str:
    if table.get("kind", "seeds") == "table":
        return render_plain(table)
    metrics = table.get("metrics", study.get("metrics"))
    formats = table.get("formats", study.get("formats"))
    keys = list(metrics)
    names = [metrics[k] for k in keys]
    kinds = [formats[k] for k in keys]
    lines = ["| setting | seeds | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(keys)]
    for row in table["rows"]:
        if "cells" in row:  # a published reference row: its own words, outside the statistics
            lines.append(f"| {row['label']} | {row.get('seeds', '')} | " + " | ".join(row["cells"]) + " |")
            continue
        n, stats = _summary(row, len(keys))
        cells = [f"{_fmt(m, k)} ± {_fmt(s, k)}{_unit(k)}" for (m, s), k in zip(stats, kinds)]
        lines.append(f"| {row['label']} | {n} | " + " | ".join(cells) + " |")
    out = "\n".join(lines)

    measured = [r for r in table["rows"] if "cells" not in r]
    per_seed = []
    for row in measured:
        cols = _columns(row, len(keys))
        if cols is None:
            per_seed.append(f"{row['label']}: {row.get('note', 'per-seed values not kept')}")
            continue
        runs = [" / ".join(_value(c[i], k) for c, k in zip(cols, kinds))
                for i in range(len(cols[0]))]
        per_seed.append(f"{row['label']}: " + ", ".join(runs))
    seeds = table.get("seeds", study.get("seeds"))
    out += ("\n\nPer seed (" + ", ".join(str(s) for s in seeds) + "), "
            + " / ".join(names) + ":\n" + ";\n".join(per_seed) + ".")

    base = next(r for r in measured if r["label"] == table["baseline"])
    base_cols = _columns(base, len(keys))
    diff_lines = ["| setting | " + " | ".join(names) + " |", "|---|" + "---|" * len(keys)]
    for row in measured:
        if row is base:
            continue
        cols = _columns(row, len(keys))
        cells = []
        for i, kind in enumerate(kinds):
            d = welch(cols[i], base_cols[i]) if cols is not None else None
            if d is None:
                cells.append("n/a")
                continue
            text = (f"{_fmt(d.diff, kind, True)} [{_fmt(d.low, kind, True)}, "
                    f"{_fmt(d.high, kind, True)}]")
            cells.append(f"**{text}**" if d.beyond_noise else text)
        diff_lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    if table.get("intro"):
        out = table["intro"] + "\n\n" + out
    if len(measured) > 1:  # a table of one setting (its baseline) has no difference to show
        points = [names[i] for i, k in enumerate(kinds) if k == "percent"]
        unit = f" (percentage points for {', '.join(points)})" if points else ""
        out += (f"\n\nDifference from {table['baseline']}, mean over seeds with the {METHOD}"
                f"{unit}; **bold**: the interval excludes 0, beyond "
                f"seed noise; n/a: no per-seed values.\n\n" + "\n".join(diff_lines))
    return _finish(out, table, study)


def _finish(out: str, table: dict, study: dict | None = None) -> str:
    """The floor's sentence, the plot's link and the table's outro after a "seeds" table."""
    floor = table.get("floor")
    if floor:
        value = reverse_kl_floor(floor["modes"], floor["samples"])
        out += (f"\n\nReverse KL floor: a perfect generator's expected reverse KL at {floor['modes']} "
                f"modes and {floor['samples']:,} samples is (K-1)/(2N) = {value:.4f}; values that "
                f"differ by less do not differ.")
    if table.get("plot") and study is not None:
        rel = os.path.relpath(plot_path(study, table), os.path.dirname(RESULTS))
        out += f"\n\n![{study['study']}: {table['name']}, per seed and mean with its 95% interval]({rel})"
    if table.get("outro"):
        out += "\n\n" + table["outro"]
    return out


IMAGES = os.path.join(REPO, "docs", "images", "results")


def plot_path(study: dict, table: dict) -> str:
    return os.path.join(IMAGES, f"{study['study']}_{table['name']}.png")


def plot_table(study: dict, table: dict, path: str) -> None:
    """One panel per metric: each setting's per-seed values (dots) and mean with its 95% t
    interval (bar), the picture of a "seeds" table; rows without per-seed values are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spectral_gan.report.significance import t_quantile

    metrics = table.get("metrics", study.get("metrics"))
    formats = table.get("formats", study.get("formats"))
    rows = [r for r in table["rows"] if _columns(r, len(metrics)) is not None]
    labels = [r["label"].replace("`", "") for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 2.5, 0.42 * len(rows) + 1.2),
                             sharey=True, squeeze=False)
    for ax, (i, key) in zip(axes[0], enumerate(metrics)):
        scale = 100.0 if formats[key] == "percent" else 1.0
        for y, row in enumerate(rows):
            values = [v * scale for v in _columns(row, len(metrics))[i]]
            ax.plot(values, [y] * len(values), "o", color="0.6", markersize=4)
            mean = statistics.fmean(values)
            half = (t_quantile(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
                    if len(values) > 1 else 0.0)
            ax.errorbar([mean], [y], xerr=[[half], [half]], fmt="D", color="black", markersize=5,
                        capsize=3)
        ax.set_title(metrics[key] + (" (%)" if scale == 100.0 else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)), labels)
    axes[0][0].invert_yaxis()
    seeds = table.get("seeds", study.get("seeds"))
    fig.suptitle(f"{study['study']}: {table['name']} (seeds {seeds[0]}-{seeds[-1]}; dots: seeds, "
                 f"diamond and bar: mean and 95% t interval)", fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def plots() -> list[str]:
    """Draw the plot of every "seeds" table that asks for one (``"plot": true``)."""
    drawn = []
    for study in studies():
        for table in study["tables"]:
            if table.get("plot") and table.get("kind", "seeds") == "seeds":
                plot_table(study, table, plot_path(study, table))
                drawn.append(plot_path(study, table))
    return drawn


def studies() -> list[dict]:
    out = []
    for path in sorted(glob.glob(os.path.join(DATA, "*.json"))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def sections() -> dict[str, str]:
    """``data:<study>:<table>`` -> its generated markdown, for every study and table."""
    return {f"data:{s['study']}:{t['name']}": render_table(s, t) for s in studies() for t in s["tables"]}


def apply(text: str, generated: dict[str, str]) -> str:
    for name, body in generated.items():
        start, end = markers(name)
        if start not in text or end not in text:
            raise SystemExit(f"docs/results.md has no {start} ... {end} section for {name}; add "
                             f"the two markers where the table belongs")
        head, rest = text.split(start, 1)
        text = head + f"{start}\n{body}\n{end}" + rest.split(end, 1)[1]
    return text


def collect(sweep_dir: str) -> list[list[float]]:
    from spectral_gan.report.runs import read_sweep

    runs = sorted(read_sweep(sweep_dir), key=lambda r: int(r.seed))
    tags = ("metrics/modes", "metrics/high_quality", "metrics/reverse_kl")
    return [[round(float(r.final(t)), 6) for t in tags] for r in runs]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "render"
    if command == "collect":
        print(json.dumps(collect(argv[1])))
        return 0
    doc = RESULTS
    if "--doc" in argv:  # another copy of the page, e.g. a draft
        doc = os.path.abspath(argv[argv.index("--doc") + 1])
    with open(doc) as f:
        text = f.read()
    generated = sections()
    if "--only" in argv:  # one study's sections, e.g. while drafting it
        study = argv[argv.index("--only") + 1]
        generated = {k: v for k, v in generated.items() if k.startswith(f"data:{study}:")}
    new = apply(text, generated)
    if command == "check":
        if new != text:
            print(f"{os.path.relpath(doc, REPO)} differs from its data: run `make results`",
                  file=sys.stderr)
            return 1
        return 0
    if command != "render":
        print(f"unknown command {command!r}: render | check | collect SWEEP_DIR", file=sys.stderr)
        return 2
    with open(doc, "w") as f:
        f.write(new)
    if "--no-plots" not in argv:
        for path in plots():
            print(f"drew {os.path.relpath(path, REPO)}")
    print(f"rendered {len(generated)} section(s) into {os.path.relpath(doc, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
