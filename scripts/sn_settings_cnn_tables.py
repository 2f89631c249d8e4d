"""The tables of the CNN robustness study (scripts/sn_settings_cnn.py), built from its runs.

Each table is one of scripts/results.py's kinds, so `make results` renders them from
docs/results/sn_settings_cnn.json like every other study. The pivots follow the MLP study's
(docs/results/sn_settings.json, Miyato et al. 2018, Table 1 settings x normalizations): mean ± std
over the seeds per cell, the collapsed seeds (classifier IS below 1.5) counted beside the FID, the
lowest mean of each setting in bold. The "seeds" tables give the differences the MLP study's answer
rests on (SN at F against the other settings and against the other normalizations) with the
Welch intervals scripts/results.py computes.
"""
from __future__ import annotations

import os
import statistics

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = ("A", "B", "C", "D", "E", "F")
NORMS = ("none", "sn", "bsn", "msn", "osn", "gp", "bn")  # the seven of the MLP study
SEEDS = (0, 1)
COLLAPSE_IS = 1.5  # the MLP study's collapse flag (and health.py's): IS below 1.5, one class


def setting(name: str) -> dict:
    """configs/sn_setting/<name>.yaml: n_dis and the optimizers' lr and betas."""
    with open(os.path.join(REPO, "configs", "sn_setting", f"{name}.yaml")) as f:
        return yaml.safe_load(f)


def n_dis(name: str) -> int:
    return int(setting(name)["n_dis"])


def settings_table() -> dict:
    rows = []
    for name in SETTINGS:
        s = setting(name)
        d = s["optimizer"]["d"]
        rows.append([name, f"{d['lr']:.0e}".replace("e-0", "e-"), list(d["betas"]), s["n_dis"]])
    return {"name": "settings", "kind": "table",
            "columns": [{"name": "setting"}, {"name": "Adam lr"},
                        {"name": "betas", "format": "({}, {})"}, {"name": "n_dis", "format": "{}"}],
            "rows": rows}


def scored(run: dict) -> bool:
    return run.get("fid") is not None and run.get("is") is not None


def cell_runs(runs: list[dict], norm: str, name: str) -> list[dict]:
    """The finished runs of one cell (scored, or diverged: an outcome, not a failure to retry)."""
    return sorted((r for r in runs if r["norm"] == norm and r["setting"] == name
                   and (scored(r) or r.get("diverged"))), key=lambda r: r["seed"])


def _notes(cell: list[dict]) -> str:
    n = len(cell)
    collapsed = sum(1 for r in cell if scored(r) and r["is"] < COLLAPSE_IS)
    diverged = sum(1 for r in cell if r.get("diverged"))
    notes = [f"{collapsed}/{n}"] if collapsed else []
    notes += [f"{diverged}/{n} diverged"] if diverged else []
    notes += [f"{n} of {len(SEEDS)} seeds"] if n < len(SEEDS) else []
    return f" ({', '.join(notes)})" if notes else ""


def _mean_std(values: list[float], digits: str) -> str:
    if len(values) == 1:
        return format(values[0], digits)
    return f"{format(statistics.fmean(values), digits)} ± {format(statistics.stdev(values), digits)}"


def pivot(runs: list[dict], key: str, digits: str, lower_better: bool, intro: str) -> dict:
    """Norms x settings, mean ± std over the seeds of ``key`` (with the FID, the collapsed,
    diverged and missing seeds); bold: the best mean of each setting."""
    means: dict[tuple[str, str], float] = {}
    cells: dict[tuple[str, str], str] = {}
    for norm in NORMS:
        for name in SETTINGS:
            cell = cell_runs(runs, norm, name)
            values = [r[key] for r in cell if scored(r)]
            if not cell:
                continue
            text = _mean_std(values, digits) if values else "-"
            cells[norm, name] = text + (_notes(cell) if key == "fid" else "")
            if values:
                means[norm, name] = statistics.fmean(values)
    best = {}
    for name in SETTINGS:
        found = [(m, norm) for (norm, s), m in means.items() if s == name]
        if found:
            best[name] = (min(found) if lower_better else max(found))[1]
    rows = [[norm] + [({"v": cells[norm, s], "bold": True} if best.get(s) == norm else
                       cells.get((norm, s))) for s in SETTINGS] for norm in NORMS]
    return {"name": key, "kind": "table", "intro": intro,
            "columns": [{"name": "norm"}] + [{"name": s} for s in SETTINGS], "rows": rows}


def seeds_table(runs: list[dict], name: str, intro: str, rows: list[tuple[str, str, str]],
                baseline: str) -> dict | None:
    """A "seeds" table of (label, norm, setting) rows that have every seed scored; None unless
    the baseline and one other row do (a partial study leaves it out until they do)."""
    out = []
    for label, norm, setting_name in rows:
        cell = [r for r in cell_runs(runs, norm, setting_name) if scored(r)]
        if [r["seed"] for r in cell] == list(SEEDS):
            out.append({"label": label, "values": [[r["fid"], r["is"]] for r in cell]})
    if baseline not in [r["label"] for r in out] or len(out) < 2:
        return None
    return {"name": name, "baseline": baseline, "seeds": list(SEEDS), "intro": intro,
            "metrics": {"fid": "classifier FID", "is": "classifier IS"},
            "formats": {"fid": "count", "is": "score"}, "rows": out}


def calls_table(calls: list[dict]) -> dict:
    """Where and how long each call of the runner ran: the study's GPU time."""
    rows = []
    for c in calls:
        walls = {k: f"{v / 60:.1f}" if v else "-" for k, v in c.get("mean_run_s", {}).items()}
        rows.append([c["date"], c["device"], f"{c['torch']} / CUDA {c.get('cuda') or '-'}",
                     c["jobs"], c["finished"], c["wall_s"] / 60,
                     f"{walls.get('1', '-')} / {walls.get('5', '-')}"])
    return {"name": "calls", "kind": "table",
            "intro": "Calls of the runner (each resumes the runs the data file has):",
            "columns": [{"name": "date"}, {"name": "device"}, {"name": "torch / CUDA"},
                        {"name": "runs at once", "format": "{}"},
                        {"name": "runs finished", "format": "{}"},
                        {"name": "wall", "format": "{:.1f} min"},
                        {"name": "mean min per run, n_dis 1 / 5"}],
            "rows": rows}


def tables(runs: list[dict], calls: list[dict], steps: int) -> list[dict]:
    """Every table the runs support so far (the seeds tables once their rows are complete)."""
    seeds = f"seeds {SEEDS[0]}-{SEEDS[-1]}"
    out = [settings_table(),
           pivot(runs, "fid", ",.0f", True,
                 f"Classifier FID at step {steps:,} (lower is better), mean ± std over {seeds}; "
                 f"\"(k/{len(SEEDS)})\": k seeds collapsed (IS below {COLLAPSE_IS}); **bold**: the "
                 "lowest mean of each setting:"),
           pivot(runs, "is", ".2f", False,
                 f"Classifier IS at step {steps:,} (higher is better); **bold**: the highest mean "
                 "of each setting:")]
    extra = [
        seeds_table(runs, "f_norms", "Setting F (lr 1e-3, betas (0.9, 0.999), n_dis 5), each "
                    "normalization against SN:",
                    [(f"`norm={n}`", n, "F") for n in NORMS], "`norm=sn`"),
        seeds_table(runs, "sn_by_setting", "SN (`norm=sn`) under each setting, against F:",
                    [(f"`sn_setting={s}`", "sn", s) for s in SETTINGS], "`sn_setting=F`"),
        seeds_table(runs, "gp_by_setting", "The penalty (`norm=gp`) under each setting, against F:",
                    [(f"`sn_setting={s}`", "gp", s) for s in SETTINGS], "`sn_setting=F`"),
    ]
    return out + [t for t in extra if t] + [calls_table(calls)]
