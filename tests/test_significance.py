"""Differences beyond seed noise (issue 32, item 2): Welch intervals against known answers."""
from __future__ import annotations

import math

import pytest

from spectral_gan.cli.compare import main as compare
from spectral_gan.report.compare import differences, floors, pick_baseline
from spectral_gan.report.runs import Run
from spectral_gan.report.significance import reverse_kl_floor, t_quantile, welch

# Student's t 0.975 quantiles from printed tables (df: value)
T_975 = {1: 12.706, 2: 4.303, 4: 2.776, 10: 2.228, 30: 2.042}


@pytest.mark.parametrize("df,value", sorted(T_975.items()))
def test_t_quantile_matches_the_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-3)


def test_welch_interval_by_hand():
    a, b = [1.0, 2.0, 3.0], [5.0, 7.0, 9.0, 11.0]
    # means 2 and 8; variances of the means 1/3 and 20/3/4 = 5/3; se^2 = 2
    d = welch(a, b)
    df = 2.0 ** 2 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert d.diff == pytest.approx(-6.0) and d.df == pytest.approx(df)
    half = t_quantile(0.975, df) * math.sqrt(2.0)
    assert (d.low, d.high) == pytest.approx((-6.0 - half, -6.0 + half))
    assert d.beyond_noise


def test_welch_needs_two_seeds_and_handles_constant_samples():
    assert welch([1.0], [1.0, 2.0]) is None
    same = welch([8.0, 8.0], [8.0, 8.0, 8.0])
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0) and not same.beyond_noise
    assert welch([8.0, 8.0], [7.0, 7.0]).beyond_noise


def _run(config: str, seed: int, values: dict[str, float], path: str = "/nonexistent") -> Run:
    overrides = dict(kv.split("=", 1) for kv in config.split())
    overrides["seed"] = str(seed)
    return Run(path, overrides, {tag: [(100, v, float(seed))] for tag, v in values.items()})


def synthetic_sweep() -> list[Run]:
    """norm=far differs from norm=sn by 10 std of the seed noise; norm=near by a tenth of it."""
    runs = []
    for seed, noise in enumerate([-0.02, 0.0, 0.02]):
        runs.append(_run("norm=sn", seed, {"metrics/reverse_kl": 0.10 + noise}))
        runs.append(_run("norm=far", seed, {"metrics/reverse_kl": 0.30 + noise}))
        runs.append(_run("norm=near", seed, {"metrics/reverse_kl": 0.102 - noise}))
    return runs


def test_differences_mark_only_the_real_one():
    runs = synthetic_sweep()
    rows = {r["config"]: r["metrics/reverse_kl"] for r in differences(runs, "norm=sn")}
    assert rows["norm=far"].beyond_noise and rows["norm=far"].diff == pytest.approx(0.2)
    assert not rows["norm=near"].beyond_noise


def test_baseline_is_named_by_its_overrides():
    configs = ["norm=sn", "norm.scale=2 norm=sn", "norm=none"]
    assert pick_baseline(configs, "norm=sn") == "norm=sn"
    with pytest.raises(ValueError, match="matches 0"):
        pick_baseline(configs, "norm=msn")


def test_reverse_kl_floor_is_the_chi_square_mean():
    assert reverse_kl_floor(8, 2500) == pytest.approx(0.0014)
    assert reverse_kl_floor(25, 2500) == pytest.approx(0.0048)


def test_compare_prints_the_differences_and_the_floor(tmp_path, capsys, monkeypatch):
    import spectral_gan.cli.compare as cli

    runs = synthetic_sweep()
    monkeypatch.setattr(cli, "read_sweep", lambda _: runs)
    monkeypatch.setattr("spectral_gan.report.compare._modes_and_samples", lambda r: (8, 2500))
    assert compare([str(tmp_path), "--no-plots", "--baseline", "norm=sn"]) == 0
    out = capsys.readouterr().out
    assert "Welch t interval, 95%" in out
    diffs = out.split("Welch t interval, 95%", 1)[1].splitlines()
    far = next(line for line in diffs if line.startswith("| norm=far"))
    near = next(line for line in diffs if line.startswith("| norm=near"))
    assert "**" in far and "**" not in near
    assert "0.0014" in out and floors(runs)
    assert compare([str(tmp_path), "--no-plots", "--baseline", "norm=bsn"]) == 2
    assert "name one of" in capsys.readouterr().err


def test_welch_from_summaries_equals_welch_from_values():
    import statistics
    a, b = [1.0, 2.5, 3.0], [5.0, 7.0, 9.5, 11.0]
    from spectral_gan.report.significance import welch_summary
    s = welch_summary(statistics.fmean(a), statistics.stdev(a), 3,
                      statistics.fmean(b), statistics.stdev(b), 4)
    w = welch(a, b)
    assert (s.diff, s.low, s.high, s.df) == pytest.approx((w.diff, w.low, w.high, w.df))


def test_a_run_that_stopped_early_is_counted_and_warned_about(tmp_path, capsys, monkeypatch):
    """A crashed job (or a truncated event file) is not a normal row: 'incomplete' counts it and
    a warning names it (issue 34, item 4)."""
    import spectral_gan.cli.compare as cli

    def run(name: str, last: int) -> Run:
        path = tmp_path / name
        (path / ".hydra").mkdir(parents=True)
        (path / ".hydra" / "config.yaml").write_text("steps: 20\n")
        loss = [(s, 1.0, float(s)) for s in range(0, last + 1, 5)] if last else []
        return Run(str(path), {"norm": "sn", "seed": name[-1]}, {"loss/d": loss})

    runs = [run("seed0", 20), run("seed1", 5), run("seed2", 0)]
    assert [r.incomplete for r in runs] == [False, True, True]
    monkeypatch.setattr(cli, "read_sweep", lambda _: runs)
    assert compare([str(tmp_path), "--no-plots"]) == 0
    captured = capsys.readouterr()
    assert "seed1 logged up to generator step 5 of 20" in captured.err
    assert "seed2 logged up to generator step 0 of 20" in captured.err
    assert "| norm=sn | 3 | 0 | 0 | 2 | 20 |" in captured.out  # diverged, failed, incomplete


def test_a_resumed_runs_event_file_that_sorts_first_loses_nothing(tmp_path):
    """Two event files of one run in the same second: the resumed one (writer counter 10) sorts
    before the first (9) as text, so its events are read first; the series still comes out whole
    and in step order."""
    import os

    from torch.utils.tensorboard import SummaryWriter

    from spectral_gan.report.runs import read_run

    tb = tmp_path / "tb"
    for name, steps in (("first", range(1, 5)), ("resumed", range(5, 8))):
        writer = SummaryWriter(str(tb), filename_suffix=f".{name}")
        for s in steps:
            writer.add_scalar("loss/d", float(s), s)
        writer.close()
    files = sorted(os.listdir(tb))
    first = next(f for f in files if f.endswith(".first"))
    resumed = next(f for f in files if f.endswith(".resumed"))
    os.rename(tb / first, tb / "events.out.tfevents.100.host.1.9")
    os.rename(tb / resumed, tb / "events.out.tfevents.100.host.1.10")
    run = read_run(str(tmp_path))
    assert [s for s, _ in run.series("loss/d")] == [1, 2, 3, 4, 5, 6, 7]


def test_a_truncated_event_file_is_named_in_a_warning(tmp_path, capsys):
    """Issue 34, item 4: TensorBoard's reader stops at a cut record without a word."""
    from torch.utils.tensorboard import SummaryWriter

    from spectral_gan.report.runs import read_sweep, truncated_at

    run = tmp_path / "0_norm=sn" / "tb"
    writer = SummaryWriter(str(run))
    for step in range(1, 21):
        writer.add_scalar("loss/d", 1.0 / step, step)
    writer.close()
    (event,) = run.glob("events.out.tfevents.*")
    assert truncated_at(str(event)) is None
    data = event.read_bytes()
    event.write_bytes(data[:-7])  # the last record cut short
    assert truncated_at(str(event)) is not None
    (found,) = read_sweep(str(tmp_path))
    assert list(found.damaged) == [str(event)]
    assert compare([str(tmp_path), "--no-plots"]) == 0
    assert f"warning: {event} is truncated at byte" in capsys.readouterr().err
