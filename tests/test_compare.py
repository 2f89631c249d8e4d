"""A real tiny multirun on ring (two norms, two seeds), then spectral-gan-compare."""
from __future__ import annotations

import csv
import statistics

from spectral_gan.compare_cli import main as compare
from tests.conftest import run_cli
from tests.test_train import RING, scalars


def test_multirun_then_compare(tmp_path, capsys):
    proc = run_cli("-m", *RING, "norm=none,sn", "seed=0,1", "steps=4", "log_every=1",
                   "eval.every=2", "eval.num_samples=200", "callbacks.progress_bar.refresh_rate=0",
                   cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = next((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    assert compare([str(sweep)]) == 0
    printed = capsys.readouterr().out
    with open(sweep / "comparison.csv") as f:
        rows = {r["config"]: r for r in csv.DictReader(f)}
    assert len(rows) == 2 and all(int(r["seeds"]) == 2 for r in rows.values())
    assert set(rows) == {c for c in rows if "norm=none" in c or "norm=sn" in c}
    for norm in ("none", "sn"):
        row = next(r for c, r in rows.items() if f"norm={norm}" in c)
        members = [j for j in jobs if f"norm={norm}," in j.name or j.name.endswith(f"norm={norm}")]
        logged = [scalars(str(j)) for j in members]
        finals = [s["metrics/reverse_kl"][-1][1] for s in logged]
        assert float(row["reverse_kl_final"]) == statistics.fmean(finals)
        # modes: larger is better, so "best" is each seed's maximum
        assert float(row["modes_best"]) == statistics.fmean(max(v for _, v in s["metrics/modes"])
                                                            for s in logged)
        assert int(row["last_step"]) == 4 and int(row["diverged"]) == 0
    for name in ("comparison.md", "metrics_reverse_kl.png", "metrics_modes.png", "sigma_per_layer.png"):
        assert (sweep / name).exists(), name
    assert "norm=sn" in printed and "reverse_kl final" in printed


def test_compare_refuses_a_missing_directory(tmp_path, capsys):
    assert compare([str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
