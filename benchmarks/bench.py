"""`make bench`: step time of every normalization preset through the real training path, the
framework against a bare PyTorch loop, peak memory, FID throughput and a scaling table.

Method: each measurement trains through `spectral_gan.training.run.train` on the config that
`spectral-gan-train <overrides>` composes, with a StepTimer callback; the first 3 steps (warm-up)
and the last (it samples and evaluates) are dropped and the median of the rest is taken. The
presets and the bare loop (written here with the same networks, SN, loss, optimizers and batch)
all run in this one process, interleaved (every preset once per round, then the loop, `--repeats`
rounds), and ratios are taken within each round: the median over rounds of each preset's step
time against `none`'s, and of `sn`'s against the loop's. (One process per run, as an earlier
version did, added per-process offsets of a few percent that swamped the 5% targets.) Scaling,
the peers' setting and FID throughput run `python -m spectral_gan.cli.train` in processes of their
own, as a user would.

Writes benchmarks/results/latest.json and the table between the markers in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # spectral_gan from this checkout, as the training subprocesses use

from devtools.hardware import cpu_model, describe, gpu_name  # noqa: E402
PRESETS = ["none", "sn", "bsn", "msn", "osn", "gp", "bn"]
MODEL = ["data=mnist5k", "generator=dcgan", "discriminator=dcgan", "loss=hinge", "n_dis=1"]
# The peers' setting (StudioGAN's and Mimicry's SNGAN): 3-channel 32x32 random images, batch 64,
# n_dis 5, hinge, SN; their step times were measured on this machine kind with 2 threads.
PEER_MODEL = ["data=synthetic", "loss=hinge", "norm=sn", "n_dis=5", "batch_size=64"]
PEERS = {
    "cnn": {"arch": ["generator=dcgan", "discriminator=dcgan"],
            "what": "SN-paper CNN (3.8M G / 2.9M D)",
            "figures": {"StudioGAN": {"d_step_ms": 506, "g_step_ms": 369, "iteration_s": 2.9}}},
    "resnet": {"arch": ["generator=resnet", "discriminator=resnet"],
               "what": "SNGAN ResNet-32 (4.3M G / 1.05M D)",
               "figures": {"Mimicry, StudioGAN, bare loop (alike)":
                           {"d_step_ms": 2400, "g_step_ms": 4000, "iteration_s": 5 * 2.4 + 4.0}}},
}


def timed_overrides(tmp: str, steps: int, device: str, warmup: int) -> list[str]:
    """Quiet, evaluation-free settings (configs/debug/quiet.yaml: no progress bar, model summary
    or config tree, scalars every 1000 steps, no periodic samples, checkpoints or evaluation) and
    the StepTimer callback writing to ``tmp``."""
    return [f"steps={steps}", "debug=quiet", "ema.decay=0", "eval.classifier=false",
            f"trainer.accelerator={device}", f"hydra.run.dir={tmp}/run",
            "+callbacks.step_timer._target_=spectral_gan.training.callbacks.StepTimer",
            f"+callbacks.step_timer.path={tmp}/times.json", f"+callbacks.step_timer.warmup={warmup}"]


def read_times(tmp: str) -> dict:
    with open(os.path.join(tmp, "times.json")) as f:
        result = json.load(f)
    result["median_s"] = statistics.median(result["step_times"])
    return result


def train_step_time(overrides: list[str], steps: int, device: str, model: list[str] = MODEL,
                    warmup: int = 3) -> dict:
    """``spectral-gan-train`` as a user runs it, in a process of its own."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "spectral_gan.cli.train", *model, *overrides,
               *timed_overrides(tmp, steps, device, warmup)]
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(overrides)} failed:\n{proc.stderr[-3000:]}")
        return read_times(tmp)


def train_step_time_in_process(overrides: list[str], steps: int, device: str,
                               model: list[str] = MODEL, warmup: int = 3) -> dict:
    """The same run through ``spectral_gan.training.run.train`` (what the console script calls after
    composing the config) in this process, so that every variant of a comparison shares one
    process: separate processes differed by a few percent each (allocation, placement), which
    swamped the 5% targets."""
    from spectral_gan.cli.train import compose_train_config
    from spectral_gan.training.run import train

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            result = train(compose_train_config([*model, *overrides, *timed_overrides(tmp, steps, device, warmup)],
                                                run_dir=f"{tmp}/run"))
        finally:
            logging.disable(logging.NOTSET)
        if result.get("interrupted"):  # SIGTERM/SIGINT during a timed run: the benchmark stops
            raise SystemExit(128 + int(signal.Signals[result["interrupted"]["signal"]]))
        return read_times(tmp)


def bare_loop_step_time(steps: int, batch: int, ch: int | None, device: str, n_dis: int = 1,
                        data: str = "mnist5k", optimized: bool = True, arch: str = "dcgan",
                        warmup: int = 3) -> float:
    """The same step written as a plain loop: no Lightning, no logging, no callbacks.

    ``optimized``: with this framework's default speed settings (channels_last inputs, fused
    Adam), so that the ratio measures the framework alone; ``False`` is the loop as the peer
    projects write it (default memory format, Adam's default implementation). ``arch``: ``dcgan``
    (the SN paper's standard CNN) or ``resnet`` (SNGAN ResNet, the paper's widths).
    """
    from bare_step import bare_gan_step  # benchmarks/, this file's folder
    from spectral_gan.data import MNIST5kDataModule, SyntheticImages
    from spectral_gan.losses import get_loss
    from spectral_gan.models import (DCGANDiscriminator, DCGANGenerator, ResNetDiscriminator,
                                     ResNetGenerator)
    from spectral_gan.norms import NormHook
    from spectral_gan.training.speed import use_channels_last

    torch.manual_seed(0)
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    dm = (MNIST5kDataModule if data == "mnist5k" else SyntheticImages)(batch_size=batch,
                                                                      batches_per_step=n_dis)
    shape = dm.shape
    gen, disc = {"dcgan": (DCGANGenerator, DCGANDiscriminator),
                 "resnet": (ResNetGenerator, ResNetDiscriminator)}[arch]
    g = gen(shape, ch=ch).to(dev)
    d = disc(shape, ch=ch, norm=NormHook("sn")).to(dev)
    if optimized:
        use_channels_last(g), use_channels_last(d)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999), fused=optimized or None)
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999), fused=optimized or None)
    loss = get_loss("hinge")
    loader = iter(dm.train_dataloader())
    times = []
    for _ in range(steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        bare_gan_step(g, d, opt_d, opt_g, loss, next(loader).to(dev).split(batch))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:-1])


def bare_loop_in_subprocess(**kwargs) -> float:
    """``bare_loop_step_time(**kwargs)`` in a fresh process, as the framework's runs in the
    peers' setting get one, so that both sides of that ratio start from the same state."""
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); from bench import bare_loop_step_time; "
            "print(json.dumps(bare_loop_step_time(**json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if proc.returncode != 0:
        raise RuntimeError(f"bare loop {kwargs} failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def on_gpu(r: dict) -> bool:
    """Whether a result was measured on a GPU (results before the "gpu" key: by the device name)."""
    return bool(r["gpu"]) if "gpu" in r else "CPU" not in r["device"]


def markdown(r: dict) -> str:
    # "device" names the CPU model and its threads since results recorded "cpu"; before, only
    # "CPU x86_64"-like names, so the thread count is added here for those.
    where = r["device"] if "cpu" in r else f"{r['device']} ({r['threads']} threads)"
    lines = [f"Measured {r['date']} on {where}, torch {r['torch']}; "
             f"SN-paper CNN (ch={r['ch']}), 32x32, batch {r['batch']}, n_dis 1, hinge; "
             f"{r['repeats']} interleaved rounds of {r['steps']} steps, median step time. "
             f"Reproduce: `make bench`.", "",
             "| preset | step (ms) | steps/s | ratio vs none | target | "
             + ("peak CUDA memory (MB) |" if on_gpu(r) else "peak RSS (MB) |"),
             "|---|---|---|---|---|---|"]
    targets = {"sn": "<= 1.05", "osn": "<= 1.05", "bsn": "<= 1.08", "msn": "<= 1.08",
               "gp": "reported", "bn": "reported", "none": "1"}
    for p in r["presets"]:
        ms = r["step_ms"][p]
        lines.append(f"| {p} | {ms:.0f} | {1000 / ms:.2f} | {r['norm_ratio_vs_none'][p]:.3f} | "
                     f"{targets[p]} | {r['peak_rss_mb'][p]:.0f} |")
    lines += ["", f"Framework (Lightning module, `sn`) vs a bare loop of the same step: "
              f"**{r['framework_ratio_vs_bare_loop']:.3f}** (bare loop {r['bare_loop_ms']:.0f} ms, "
              f"framework {r['step_ms']['sn']:.0f} ms; target <= 1.05).", "",
              "Scaling (`sn`, step time in ms):", "",
              "| batch | ms | | width (ch) | ms |", "|---|---|---|---|---|"]
    for (b, bm), (w, wm) in zip(r["scaling"]["batch"].items(), r["scaling"]["width"].items()):
        lines.append(f"| {b} | {bm:.0f} | | {w} | {wm:.0f} |")
    if r.get("peers"):
        lines += ["", "Peers (StudioGAN's and Mimicry's SNGAN; same architecture, batch 64, n_dis 5, hinge, SN, "
                  "3-channel 32x32 random images; seconds per generator iteration = 5 D steps + "
                  "1 G step). Ours (fp32 and `trainer.precision=bf16-mixed`) and the plain loop as "
                  "the peers write it (NCHW, Adam's default implementation) are measured in this run, "
                  "interleaved; the peers' figures were measured on this machine kind in another run "
                  "(runs drift by up to ~10%):", "",
                  "| architecture | this framework, fp32 (s) | this framework, bf16-mixed (s) | "
                  "plain loop, this run (s) | peer figure (s) | fp32 / peer | fp32 / plain loop |",
                  "|---|---|---|---|---|---|---|"]
        for key, p in r["peers"].items():
            for name, fig in p["figures"].items():
                lines.append(f"| {p['what']} | {p['ours_s']:.2f} | {p['ours_bf16_s']:.2f} | "
                             f"{p['bare_loop_s']:.2f} | {name}: {fig['iteration_s']:.1f} | "
                             f"{p['ours_s'] / fig['iteration_s']:.2f} | "
                             f"{p['ours_s'] / p['bare_loop_s']:.2f} |")
    if "fid" in r:
        lines += ["", f"FID feature extraction: Inception {r['fid']['inception_images_per_s']} images/s, "
                  f"digit classifier {r['fid']['classifier_images_per_s']} images/s."]
    return "\n".join(lines)


def _stop(signum: int, frame) -> None:
    """SIGTERM/SIGINT between timed runs (or while a subprocess run is timed: subprocess.run kills
    it on the way out) ends the benchmark with 128 + the signal; during an in-process run the
    run's own handler saves and stops it first (train_step_time_in_process)."""
    raise SystemExit(128 + signum)


def main() -> None:
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, _stop)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup-steps", type=int, default=4, help="untimed run of each preset first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--ch", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", nargs="*", default=PRESETS)
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--scaling-steps", type=int, default=9)
    parser.add_argument("--peers", nargs="*", default=["cnn", "resnet"], choices=list(PEERS))
    parser.add_argument("--peer-repeats", type=int, default=2)
    parser.add_argument("--section", default="bench",
                        help="marker name of the docs/benchmarks.md section to rewrite (gpu-check "
                             "writes bench-gpu, so the CPU table stays)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    common = [f"batch_size={args.batch}", f"generator.ch={args.ch}", f"discriminator.ch={args.ch}"]
    per_round: dict[str, list[float]] = {p: [] for p in args.presets}
    ratios: dict[str, list[float]] = {p: [] for p in args.presets}
    bare: list[float] = []
    # Untimed: one short run of each preset first, so that first-use costs in this process
    # (oneDNN kernels created per shape, the heap growing to each preset's working set) fall
    # outside the rounds.
    for p in args.presets:
        train_step_time_in_process([f"norm={p}", *common], args.warmup_steps, args.device, warmup=1)
    for round_ in range(args.repeats):
        for p in args.presets:
            res = train_step_time_in_process([f"norm={p}", *common], args.steps, args.device)
            per_round[p].append(res["median_s"])
            print(f"round {round_ + 1} {p}: {res['median_s'] * 1000:.0f} ms", flush=True)
        for p in args.presets:
            ratios[p].append(per_round[p][-1] / per_round["none"][-1])
        bare.append(bare_loop_step_time(args.steps, args.batch, args.ch, args.device))
        print(f"round {round_ + 1} bare loop: {bare[-1] * 1000:.0f} ms", flush=True)
    sn_over_bare = [s / b for s, b in zip(per_round["sn"], bare)]
    gpu = torch.cuda.is_available() and args.device != "cpu"
    result = {
        "date": time.strftime("%Y-%m-%d"),
        # The GPU with the host CPU's model, or the CPU's model (platform.processor() is
        # usually empty on Linux: devtools.hardware reads /proc/cpuinfo).
        "device": describe(gpu, torch.get_num_threads()), "cpu": cpu_model(), "cpu_cores": os.cpu_count(),
        "gpu": gpu_name() if gpu else None,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "ch": args.ch, "batch": args.batch, "steps": args.steps, "repeats": args.repeats,
        "presets": args.presets,
        "step_ms": {p: statistics.median(v) * 1000 for p, v in per_round.items()},
        "norm_ratio_vs_none": {p: statistics.median(v) for p, v in ratios.items()},
        "framework_ratio_vs_bare_loop": statistics.median(sn_over_bare),
        "bare_loop_ms": statistics.median(bare) * 1000,
        "raw": {"per_round_s": per_round, "bare_loop_s": bare},
    }
    # Peak memory: one short CLI run per preset in a process of its own (a process's peak
    # resident size is not reset between in-process runs).
    result["peak_rss_mb"] = {}
    for p in args.presets:
        res = train_step_time([f"norm={p}", *common], 5, args.device, warmup=1)
        result["peak_rss_mb"][p] = res.get("peak_cuda_mb", res["peak_rss_mb"])
    scaling: dict[str, dict] = {"batch": {}, "width": {}}
    if not args.no_scaling:
        for b in (32, 64, 128):
            scaling["batch"][b] = train_step_time(
                ["norm=sn", f"batch_size={b}", f"generator.ch={args.ch}", f"discriminator.ch={args.ch}"],
                args.scaling_steps, args.device)["median_s"] * 1000
        for w in (32, 64, 96):
            scaling["width"][w] = train_step_time(
                ["norm=sn", f"batch_size={args.batch}", f"generator.ch={w}", f"discriminator.ch={w}"],
                args.scaling_steps, args.device)["median_s"] * 1000
        print(f"scaling: {scaling}", flush=True)
    result["scaling"] = scaling
    result["peers"] = {}
    for key in args.peers:
        peer = PEERS[key]
        # Few iterations: a ResNet iteration is ~16 s here. Warm-up 1, the last one dropped.
        steps = 6 if key == "cnn" else 3
        repeats = args.peer_repeats if key == "cnn" else 1
        arch = "dcgan" if key == "cnn" else "resnet"
        ours, ours_bf16, plain = [], [], []
        for _ in range(repeats):  # interleaved: ours fp32, ours bf16, the plain loop
            model = [*PEER_MODEL, *peer["arch"]]
            ours.append(train_step_time([], steps, args.device, model, warmup=1)["median_s"])
            ours_bf16.append(train_step_time(["trainer.precision=bf16-mixed"], steps, args.device,
                                             model, warmup=1)["median_s"])
            plain.append(bare_loop_in_subprocess(
                steps=steps, batch=64, ch=64 if arch == "dcgan" else None, device=args.device,
                n_dis=5, data="synthetic", optimized=False, arch=arch, warmup=1))
        entry = {"what": peer["what"], "figures": peer["figures"], "ours_s": statistics.median(ours),
                 "ours_bf16_s": statistics.median(ours_bf16), "bare_loop_s": statistics.median(plain),
                 "raw": {"ours_s": ours, "ours_bf16_s": ours_bf16, "bare_loop_s": plain}}
        result["peers"][key] = entry
        print(f"peers {key}: ours {entry['ours_s']:.2f} s, bf16 {entry['ours_bf16_s']:.2f} s, "
              f"plain loop {entry['bare_loop_s']:.2f} s", flush=True)
    fid = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fid_throughput.py"), "--repeats", "3"],
                         capture_output=True, text=True, cwd=ROOT)
    if fid.returncode == 0:
        result["fid"] = json.loads(fid.stdout)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    start, end = f"<!-- {args.section}:start -->", f"<!-- {args.section}:end -->"
    table = f"{start}\n{markdown(result)}\n{end}"
    text = (text[:text.index(start)] + table + text[text.index(end) + len(end):]
            if start in text else text.rstrip() + f"\n\n## `make bench` ({args.section})\n\n" + table + "\n")
    doc.write_text(text)
    print(markdown(result))


if __name__ == "__main__":
    main()
