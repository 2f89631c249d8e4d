"""A real tiny multirun on ring (two norms, two seeds), then spectral-gan-compare and a real
TensorBoard server reading the same sweep."""
from __future__ import annotations

import csv
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from spectral_gan.cli.compare import main as compare
from spectral_gan.report.compare import markdown, metric_tags, table
from spectral_gan.report.runs import Run
from tests.conftest import run_cli
from tests.test_train import RING, scalars


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("sweep")
    proc = run_cli("-m", *RING, "norm=none,sn", "seed=0,1", "steps=4", "log_every=1",
                   "eval.every=2", "eval.num_samples=200", "callbacks.progress_bar.refresh_rate=0",
                   cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next((cwd / "outputs" / "train" / "multiruns").iterdir())


def test_compare_table_and_plots_match_the_event_files(sweep, capsys):
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 4
    assert compare([str(sweep)]) == 0
    printed = capsys.readouterr().out
    with open(sweep / "comparison.csv") as f:
        rows = {r["config"]: r for r in csv.DictReader(f)}
    assert len(rows) == 2 and all(int(r["seeds"]) == 2 for r in rows.values())
    for norm in ("none", "sn"):
        row = next(r for c, r in rows.items() if f"norm={norm}" in c)
        members = [j for j in jobs if f"norm={norm}," in j.name or j.name.endswith(f"norm={norm}")]
        logged = [scalars(str(j)) for j in members]
        assert len(logged) == 2
        finals = [s["metrics/reverse_kl"][-1][1] for s in logged]
        assert float(row["reverse_kl_final"]) == statistics.fmean(finals)
        # modes: larger is better, so "best" is each seed's maximum
        assert float(row["modes_best"]) == statistics.fmean(max(v for _, v in s["metrics/modes"])
                                                            for s in logged)
        assert int(row["last_step"]) == 4 and int(row["diverged"]) == 0
    for name in ("comparison.md", "metrics_reverse_kl.png", "metrics_modes.png", "sigma_per_layer.png",
                 "sigma_eff_per_layer.png", "condition_per_layer.png", "grad_norm_d_per_layer.png",
                 "grad_norm_g_per_layer.png", "drift_per_layer.png",
                 "lipschitz_bound_layerwise.png", "lipschitz_grad_max.png"):
        assert (sweep / name).exists(), name
    assert "norm=sn" in printed and "reverse_kl final" in printed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.loads(response.read())


def test_tensorboard_serves_the_sweep(sweep):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep),
                               "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        runs, deadline = [], time.time() + 90
        while time.time() < deadline and len(runs) < 4:
            try:
                runs = _get(f"http://127.0.0.1:{port}/data/runs")
            except OSError:
                pass
            time.sleep(1)
        assert len(runs) == 4 and all("norm=" in r and "seed=" in r for r in runs)  # names say overrides
        tags = _get(f"http://127.0.0.1:{port}/data/plugin/scalars/tags")
        for run in runs:
            assert {"loss/d", "metrics/reverse_kl", "sigma/fc0"} <= set(tags[run]), run
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_compare_refuses_a_missing_directory(tmp_path, capsys):
    assert compare([str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def _run(seed: int, **series: list[float]) -> Run:
    scalars = {f"metrics/{k}": [(s, v, float(s)) for s, v in enumerate(vals)]
               for k, vals in series.items()}
    scalars["loss/d"] = [(0, 1.0, 0.0), (2, 1.0, 1.0)]
    return Run(f"run{seed}", {"norm": "sn", "seed": str(seed)}, scalars)


def test_best_follows_each_metrics_direction_from_the_registry():
    """"best" is each seed's maximum for higher-is-better metrics (IS), minimum otherwise (FID,
    KID); columns in the registry's order, whatever order the runs logged them in."""
    runs = [_run(0, kid_classifier=[0.5, 0.1, 0.3], is_classifier=[2.0, 6.0, 4.0],
                 fid=[9.0, 3.0, 5.0]),
            _run(1, kid_classifier=[0.4, 0.2, 0.6], is_classifier=[3.0, 8.0, 1.0],
                 fid=[7.0, 1.0, 2.0])]
    (row,) = table(runs)
    assert row["fid_best"] == statistics.fmean([3.0, 1.0])
    assert row["is_classifier_best"] == statistics.fmean([6.0, 8.0])
    assert row["kid_classifier_best"] == pytest.approx(statistics.fmean([0.1, 0.2]))
    assert row["fid_final"] == statistics.fmean([5.0, 2.0])
    names = [k[:-len("_final")] for k in row if k.endswith("_final")]
    assert names == ["fid", "is_classifier", "kid_classifier"]
    assert "| fid final | is_classifier final | kid_classifier final |" in markdown([row])


def test_compare_columns_are_the_old_list_in_its_order():
    """The tags the hand-written list had, in its order, with kid_classifier after is_classifier;
    then those of class-conditional generators."""
    assert metric_tags()[:12] == ["metrics/fid", "metrics/is", "metrics/kid", "metrics/fid_classifier",
                       "metrics/is_classifier", "metrics/kid_classifier", "metrics/modes",
                       "metrics/high_quality", "metrics/reverse_kl", "metrics/intra_fid",
                       "metrics/intra_fid_classifier", "metrics/class_accuracy"]
    prdc = ["metrics/precision", "metrics/recall", "metrics/density", "metrics/coverage"]
    assert metric_tags()[12:20] == prdc + [t + "_classifier" for t in prdc]  # issue 36: appended


def test_rows_name_what_varies_the_runs_name_first_and_a_dash_for_nothing_logged():
    """issue 35: constant overrides are not repeated in every row, name= labels a row, and a
    metric a configuration never logged is a dash, not nan ± nan."""
    def run(seed, overrides, **series):
        r = _run(seed, **series)
        return Run(f"{r.path}_{overrides}", {**dict(o.split("=") for o in overrides.split()),
                                             "seed": str(seed)}, r.scalars)

    runs = [run(0, "name=baseline norm=sn steps=20", fid=[9.0, 5.0]),
            run(1, "name=baseline norm=sn steps=20", fid=[8.0, 4.0]),
            run(0, "name=bidirectional norm=bsn steps=20")]
    text = markdown(table(runs))
    rows = [line for line in text.splitlines()[2:]]
    assert rows[0].startswith("| baseline norm=sn | 2 |") and "4.5 ± 0.7071" in rows[0]
    assert rows[1].startswith("| bidirectional norm=bsn | 1 |")
    assert "steps=20" not in text and "nan" not in text
    assert rows[1].endswith("| – | – |")  # fid final and best: never logged by that run


def test_a_runs_name_is_in_its_directory(tmp_path):
    proc = run_cli(*RING, "steps=1", "eval.every=0", "name=my label", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert "_my-label_" in run_dir.name
