"""The benchmark scripts' own pieces (the timings themselves are never asserted)."""
from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402
import options  # noqa: E402


def test_bare_loop_runs_in_a_fresh_process_and_failures_name_their_settings():
    seconds = bench.bare_loop_in_subprocess(steps=4, batch=4, ch=4, device="cpu", n_dis=2,
                                            data="synthetic", optimized=True, warmup=1)
    assert 0 < seconds < 60
    with pytest.raises(RuntimeError, match="bare loop .*'arch': 'nonsense'"):
        bench.bare_loop_in_subprocess(steps=2, batch=4, ch=4, device="cpu", arch="nonsense")


def test_in_process_runs_time_the_training_path_one_after_another():
    ring = ["data=ring", "generator=mlp", "discriminator=mlp", "batch_size=16"]
    for norm in ("none", "msn"):  # the second run must not inherit the first one's state
        result = bench.train_step_time_in_process([f"norm={norm}"], steps=6, device="cpu",
                                                  model=ring, warmup=2)
        assert len(result["step_times"]) == 3  # 6 steps less 2 warm-up and the last
        assert result["median_s"] > 0 and result["peak_rss_mb"] > 0


def test_bare_loop_builds_the_resnet_as_peers_write_it():
    seconds = bench.bare_loop_step_time(steps=3, batch=4, ch=8, device="cpu", n_dis=1,
                                        data="synthetic", optimized=False, arch="resnet", warmup=1)
    assert seconds > 0


def test_markdown_reports_every_preset_target_and_peer():
    presets = bench.PRESETS
    result = {
        "date": "2026-01-01", "device": "CPU x86_64", "threads": 2, "torch": "2.x", "ch": 64,
        "batch": 64, "steps": 14, "repeats": 3, "presets": presets,
        "step_ms": {p: 100.0 + i for i, p in enumerate(presets)},
        "norm_ratio_vs_none": {p: 1.0 + i / 100 for i, p in enumerate(presets)},
        "framework_ratio_vs_bare_loop": 0.99, "bare_loop_ms": 101.0,
        "peak_rss_mb": {p: 1000.0 for p in presets},
        "scaling": {"batch": {32: 50.0, 64: 100.0, 128: 200.0},
                    "width": {32: 40.0, 64: 100.0, 96: 190.0}},
        "peers": {"cnn": {"what": "CNN", "figures": bench.PEERS["cnn"]["figures"], "ours_s": 2.9,
                          "ours_bf16_s": 1.9, "bare_loop_s": 3.5}},
    }
    table = bench.markdown(result)
    for p in presets:
        assert f"\n| {p} |" in table
    assert "| msn | 103 | 9.71 | 1.030 | <= 1.08 |" in table
    assert "**0.990**" in table
    assert "| CNN | 2.90 | 1.90 | 3.50 | StudioGAN: 2.9 | 1.00 | 0.83 |" in table


def test_options_variants_are_measured_against_their_baseline():
    assert options.baseline("norm=msn compile=true", ["defaults", "norm=msn"]) == "norm=msn"
    assert options.baseline("norm=msn compile=true", ["defaults"]) == "defaults"
    assert options.baseline("bf16-mixed", ["defaults", "norm=msn"]) == "defaults"


def test_results_name_the_cpu_model(tmp_path):
    from devtools.hardware import cpu_model, describe

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13\n")
    assert cpu_model(str(info)) == "AMD EPYC 7B13"
    assert cpu_model(str(tmp_path / "absent")) != ""  # platform.processor() or the architecture
    assert describe(gpu=False, threads=2).startswith(f"CPU {cpu_model()} (")
    result = {"date": "2026-01-01", "device": "CPU AMD EPYC 7B13 (2 cores, 2 torch threads)",
              "cpu": "AMD EPYC 7B13", "gpu": None, "threads": 2, "torch": "2.x", "ch": 64,
              "batch": 64, "steps": 12, "repeats": 1, "presets": ["none", "sn"],
              "step_ms": {"none": 100.0, "sn": 100.0}, "norm_ratio_vs_none": {"none": 1.0, "sn": 1.0},
              "framework_ratio_vs_bare_loop": 1.0, "bare_loop_ms": 100.0,
              "peak_rss_mb": {"none": 900.0, "sn": 900.0},
              "scaling": {"batch": {}, "width": {}}}
    table = bench.markdown(result)
    assert table.startswith("Measured 2026-01-01 on CPU AMD EPYC 7B13 (2 cores, 2 torch threads), torch")
    assert "peak RSS (MB)" in table
    assert "peak CUDA memory" in bench.markdown({**result, "gpu": "NVIDIA H100",
                                                 "device": "NVIDIA H100, host CPU AMD EPYC 7B13"})


def test_an_interrupt_stops_the_benchmark_with_128_plus_the_signal(monkeypatch):
    """Issue 34, item 6: a timed run that a signal stopped ends the benchmark, not the run only;
    between runs the benchmark's own handler does the same."""
    import signal

    import spectral_gan.training.run

    monkeypatch.setattr(spectral_gan.training.run, "train",
                        lambda cfg: {"interrupted": {"signal": "SIGTERM", "gen_step": 2}})
    with pytest.raises(SystemExit) as stopped:
        bench.train_step_time_in_process(["data=ring", "generator=mlp", "discriminator=mlp"], 2, "cpu",
                                         model=[])
    assert stopped.value.code == 128 + signal.SIGTERM
    with pytest.raises(SystemExit) as stopped:
        bench._stop(signal.SIGINT, None)
    assert stopped.value.code == 128 + signal.SIGINT
