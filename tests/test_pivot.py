"""spectral-gan-compare --pivot: the SN-settings study's two-way table, on run directories
written the way a multirun writes them (overrides.yaml, TensorBoard events)."""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from spectral_gan.cli.compare import main as compare
from spectral_gan.report import pivot
from spectral_gan.report.runs import read_sweep

FID = "metrics/fid_classifier"
IS = "metrics/is_classifier"


def fake_value(norm: str, setting: str, seed: int) -> float:
    return {"none": 100.0, "sn": 20.0}[norm] + 10.0 * "ABD".index(setting) + seed


def write_run(root: Path, job: int, overrides: list[str], scalars: dict[str, list[tuple[int, float]]]):
    run = root / str(job)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    writer = SummaryWriter(str(run / "tb"))
    for tag, points in scalars.items():
        for step, value in points:
            writer.add_scalar(tag, value, step)
    writer.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pivot_sweep")
    job = 0
    for setting in ("D", "A", "B"):  # written out of order: the table sorts the values
        for norm in ("none", "sn"):
            for seed in (0, 1):
                collapsed = 1.0 if (norm, setting, seed) == ("none", "D", 1) else 0.0
                scalars = {"loss/d": [(1, 1.0), (10, 0.5)],
                           FID: [(5, 999.0), (10, fake_value(norm, setting, seed))],
                           IS: [(10, 5.0 + seed)], "health/collapsed": [(10, collapsed)]}
                if (norm, setting, seed) == ("sn", "B", 1):
                    scalars.pop(FID)  # a run that never reached its evaluation
                write_run(root, job, [f"sn_setting={setting}", f"norm={norm}", f"seed={seed}"], scalars)
                job += 1
    return root


def test_cells_are_final_values_over_seeds_with_flags(sweep):
    runs = read_sweep(str(sweep))
    table = pivot.cells(runs, "norm", "sn_setting", FID)
    assert len(table) == 6
    cell = table[("none", "D")]
    values = [fake_value("none", "D", s) for s in (0, 1)]  # the final value, not the first (999)
    assert cell["values"] == values and cell["mean"] == statistics.fmean(values)
    assert cell["std"] == statistics.stdev(values) and cell["collapsed"] == 1 and cell["runs"] == 2
    assert table[("sn", "B")]["values"] == [fake_value("sn", "B", 0)] and table[("sn", "B")]["std"] == 0.0
    assert pivot.values_of(runs, "sn_setting") == ["A", "B", "D"]


def test_markdown_lays_out_rows_and_columns(sweep):
    text = pivot.markdown(read_sweep(str(sweep)), "norm", "sn_setting", FID)
    lines = text.splitlines()
    assert "lower is better" in lines[0]
    assert lines[2] == "| norm \\ sn_setting | A | B | D |"
    none_row = next(line for line in lines if line.startswith("| none |"))
    assert none_row.split(" | ")[3].startswith("120 ± 0.71 (1/2 collapsed)")  # D: 120, 121 -> 120.5 at 3 digits
    sn_row = next(line for line in lines if line.startswith("| sn |"))
    assert sn_row.split(" | ")[2] == "30 ± 0"  # B: seed 1 has no FID, seed 0 = 20 + 10


def test_cli_pivot_writes_tables_and_plots(sweep, capsys):
    assert compare([str(sweep), "--pivot", "norm", "sn_setting"]) == 0
    text = (sweep / "comparison.md").read_text()
    assert f"{FID} at the last evaluation" in text and f"{IS} at the last evaluation" in text
    assert (sweep / "pivot_metrics_fid_classifier_norm_by_sn_setting.png").stat().st_size > 1000
    assert compare([str(sweep), "--pivot", "norm", "sn_setting", "--metric", FID, "--no-plots"]) == 0
    assert IS not in (sweep / "comparison.md").read_text().split("configurations", 1)[1].split("\n\n", 2)[2]


def test_cli_pivot_bad_keys_say_what_exists(sweep, capsys):
    assert compare([str(sweep), "--pivot", "norm", "lr"]) == 2
    err = capsys.readouterr().err
    assert "no run of this sweep overrides 'lr'" in err and "sn_setting" in err
    assert compare([str(sweep), "--pivot", "norm", "sn_setting", "--metric", "metrics/fid"]) == 2
    assert "metrics/fid_classifier" in capsys.readouterr().err


def test_cli_pivot_baseline_row_marks_the_differences_beyond_seed_noise(sweep, capsys):
    assert compare([str(sweep), "--pivot", "norm", "sn_setting", "--baseline", "norm=none",
                    "--no-plots"]) == 0
    text = (sweep / "comparison.md").read_text()
    fid = text.split(f"{FID}: each norm minus norm=none", 1)[1].split("\n\n", 2)[1]
    sn_row = next(line for line in fid.splitlines() if line.startswith("| sn |")).split(" | ")
    assert sn_row[1].startswith("**-80 [") and sn_row[2] == "n/a"  # B: one seed for sn
    is_table = text.split(f"{IS}: each norm minus norm=none", 1)[1].split("\n\n", 2)[1]
    sn_is = next(line for line in is_table.splitlines() if line.startswith("| sn |"))
    assert "**" not in sn_is and "+0 [" in sn_is  # same values: no difference
    assert compare([str(sweep), "--pivot", "norm", "sn_setting", "--baseline", "norm=bn",
                    "--no-plots"]) == 2
    assert "no such row; the rows are none, sn" in capsys.readouterr().err
