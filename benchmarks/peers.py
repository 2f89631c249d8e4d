"""Seconds per generator step of StudioGAN's and Mimicry's SNGAN training loops against ours, on
the same device, in the same process (issue 37, item 3). Goal: ours at least 1.5x faster.

What is measured: one generator step = n_dis (5) D updates and one G update, batch 64, hinge loss,
SN on every weight layer of D, 3x32x32 synthetic images already on the device, for two
architectures (the SN paper's CNN; the SNGAN ResNet-32) in fp32 and bf16:
- studiogan, mimicry: their iteration as benchmarks/peer_loops.py writes it from their code (that
  file's docstring lists what each does per step, with the files it was read from), their own
  way of building the networks (NCHW, torch.nn.utils.spectral_norm, Adam's default
  implementation), their CIFAR-10 widths. cudnn.benchmark on for StudioGAN, off for Mimicry
  (torch's default); fp32 matmuls at torch's default precision for both (ours sets its own).
  Timed per iteration with a device synchronize on each side; the first --warmup are dropped.
- ours: `spectral-gan-train data=synthetic loss=hinge norm=sn n_dis=5 batch_size=64
  generator=G discriminator=D trainer.precision=32-true|bf16-mixed` through the LightningModule's
  training_step (bench.train_step_time_in_process: the StepTimer callback, --warmup steps and the
  last step dropped), with our defaults (channels_last, fused Adam, speed.*) plus --ours-overrides.
- Interleaved: every round runs, per architecture and precision, studiogan, mimicry, ours in
  turn; the reported time is the median over rounds of each round's median, and each ratio
  (peer / ours: > 1 means ours is faster) is the median over rounds of the ratio within a round.

bf16: StudioGAN's AMP path is autocast + GradScaler (fp16); here its autocast dtype is bf16 and
the GradScaler is kept (its code creates one whenever RUN.mixed_precision; scaler.step reads
found_inf on the host), and its power iteration runs in the autocast dtype, as its hook-based SN
would. Mimicry has no AMP: its bf16 row is its loop under torch.autocast(bf16), no scaler.
`--precisions fp16` runs StudioGAN's literal fp16 path (and ours 16-mixed), on a GPU only.

Where the networks differ from ours, and why it does not decide the comparison: the channel
widths and layer sequence are the same (CNN: G dense 4x4x512 and deconvs 256/128/64, D convs
64..512; ResNet: G 256, D 128). StudioGAN's CNN G has no BatchNorm after the dense layer and its
D ends in global sum pooling + a 512->1 dense instead of the paper's 8192->1 dense (both
negligible against the convolutions); its ResNet upsamples nearest, as ours; Mimicry's upsamples
bilinear (a cheap elementwise op); our ResNet D's dense layer has no bias; BatchNorm eps and
weight initialization differ (no effect on time). Conditioning is off for all (StudioGAN's
CIFAR-10 SNGAN config is class-conditional). The data sit on the device for everyone, so the
peers are not charged a host-to-device copy they would make per batch. Whatever else differs
is each loop's own choice, which is what is compared.

`--quick`: tiny widths, batch 8, one round of 2 steps, for the CPU tests; its numbers are not
results. The GPU command: `python benchmarks/peers.py --device cuda`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench, peer_loops
from bench import ROOT, train_step_time_in_process  # noqa: E402
from devtools.hardware import cpu_model, describe, gpu_name  # noqa: E402
from peer_loops import build_peer  # noqa: E402

ARCHS = {
    "cnn": {"what": "SN-paper CNN", "ours": ["generator=dcgan", "discriminator=dcgan"],
            "quick_widths": (8, 8)},
    "resnet": {"what": "SNGAN ResNet-32", "ours": ["generator=resnet", "discriminator=resnet"],
               "quick_widths": (16, 8)},
}
LOOPS = ["studiogan", "mimicry", "ours"]
PEERS = ["studiogan", "mimicry"]
OURS_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}
CUDNN_BENCHMARK = {"studiogan": True, "mimicry": False}
GOAL = 1.5


@contextlib.contextmanager
def peer_settings(name: str):
    """The process-wide switches as the peer's program leaves them; ours' settings restored after."""
    saved = torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision()
    torch.backends.cudnn.benchmark = CUDNN_BENCHMARK[name]
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_peer(name: str, arch: str, precision: str, device: torch.device, steps: int, warmup: int,
              batch: int, n_dis: int, widths, mimicry_sn: str) -> float:
    peer = build_peer(name, arch, device, precision, batch, n_dis, widths, mimicry_sn)
    times = []
    with peer_settings(name):
        for _ in range(warmup + steps):
            sync(device)
            start = time.perf_counter()
            peer.iteration()
            sync(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def ours_model(arch: str, precision: str, batch: int, n_dis: int, widths, extra: list[str]) -> list[str]:
    model = ["data=synthetic", "loss=hinge", "norm=sn", f"n_dis={n_dis}", f"batch_size={batch}",
             "g_batch_size=null", *ARCHS[arch]["ours"], f"trainer.precision={OURS_PRECISION[precision]}"]
    if widths:
        model += [f"generator.ch={widths[0]}", f"discriminator.ch={widths[1]}",
                  f"data.num_samples={4 * n_dis * batch}"]
    return model + list(extra)


def time_ours(arch: str, precision: str, device: torch.device, steps: int, warmup: int, batch: int,
              n_dis: int, widths, extra: list[str]) -> float:
    model = ours_model(arch, precision, batch, n_dis, widths, extra)
    # StepTimer drops `warmup` steps and the last (it samples and evaluates): `steps` remain.
    return train_step_time_in_process([], steps + warmup + 1, device.type, model, warmup)["median_s"]


def measure(args: argparse.Namespace, device: torch.device) -> dict:
    raw = {a: {p: {loop: [] for loop in args.loops} for p in args.precisions} for a in args.archs}
    for round_ in range(args.rounds):
        for arch in args.archs:
            widths = ARCHS[arch]["quick_widths"] if args.quick else None
            for precision in args.precisions:
                for loop in args.loops:  # A B C, A B C, ...
                    if loop == "ours":
                        s = time_ours(arch, precision, device, args.steps, args.warmup, args.batch,
                                      args.n_dis, widths, args.ours_overrides)
                    else:
                        s = time_peer(loop, arch, precision, device, args.steps, args.warmup,
                                      args.batch, args.n_dis, widths, args.mimicry_sn)
                    raw[arch][precision][loop].append(s)
                    print(f"round {round_ + 1} {arch} {precision} {loop}: {s:.4f} s", flush=True)
    results: dict = {}
    for arch, by_precision in raw.items():
        results[arch] = {}
        for precision, by_loop in by_precision.items():
            entry = {"s_per_g_step": {loop: statistics.median(v) for loop, v in by_loop.items()},
                     "raw_s": by_loop, "peer_over_ours": {}}
            if "ours" in by_loop:
                for peer in (p for p in PEERS if p in by_loop):
                    entry["peer_over_ours"][peer] = statistics.median(
                        a / b for a, b in zip(by_loop[peer], by_loop["ours"]))
                entry["goal_met"] = all(r >= GOAL for r in entry["peer_over_ours"].values())
            results[arch][precision] = entry
    return results


def markdown(r: dict) -> str:
    lines = [f"Measured {r['date']} on {r['device']}, torch {r['torch']}; batch {r['batch']}, "
             f"n_dis {r['n_dis']}, hinge, SN, 3x32x32 synthetic images on the device; "
             f"{r['rounds']} interleaved rounds of {r['steps']} generator steps, median. "
             f"Ratio = peer / ours (> 1: ours faster; goal >= {GOAL})."
             + (" QUICK RUN (tiny widths): not a result." if r["quick"] else ""), "",
             "| architecture | precision | StudioGAN (s) | Mimicry (s) | ours (s) | "
             "StudioGAN / ours | Mimicry / ours |", "|---|---|---|---|---|---|---|"]

    def cell(d: dict, key: str, fmt: str) -> str:
        return format(d[key], fmt) if key in d else "-"

    for arch, by_precision in r["results"].items():
        for precision, e in by_precision.items():
            s, q = e["s_per_g_step"], e["peer_over_ours"]
            lines.append(f"| {ARCHS[arch]['what']} | {precision} | {cell(s, 'studiogan', '.4f')} | "
                         f"{cell(s, 'mimicry', '.4f')} | {cell(s, 'ours', '.4f')} | "
                         f"{cell(q, 'studiogan', '.2f')} | {cell(q, 'mimicry', '.2f')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=20, help="timed generator steps per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="untimed generator steps first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n-dis", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=list(ARCHS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(OURS_PRECISION))
    parser.add_argument("--loops", nargs="+", default=LOOPS, choices=LOOPS)
    parser.add_argument("--mimicry-sn", default="torch", choices=["torch", "own"],
                        help="Mimicry's SN layers: torch.nn.utils.spectral_norm (its default) or "
                             "its own SpectralNorm class (default=False in its layers.py)")
    parser.add_argument("--ours-overrides", nargs="*", default=[],
                        help="extra spectral-gan-train overrides for ours, e.g. speed.capture_step=false")
    parser.add_argument("--quick", action="store_true",
                        help="tiny: widths (8, 8) / (16, 8), batch 8, 1 round of 2 steps, warm-up 1")
    parser.add_argument("--json", default=None, help="default: benchmarks/results/peers.json "
                                                     "(peers_quick.json with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.warmup, args.batch = 2, 1, 1, 8
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if "fp16" in args.precisions and args.device != "cuda":
        parser.error("--precisions fp16 runs on a GPU only")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    result = {
        "date": time.strftime("%Y-%m-%d"), "device": describe(gpu, torch.get_num_threads()),
        "cpu": cpu_model(), "gpu": gpu_name() if gpu else None, "torch": torch.__version__,
        "quick": args.quick, "batch": args.batch, "n_dis": args.n_dis, "steps": args.steps,
        "rounds": args.rounds, "warmup": args.warmup, "loops": args.loops,
        "precisions": args.precisions, "mimicry_sn": args.mimicry_sn,
        "ours_overrides": args.ours_overrides, "goal_peer_over_ours": GOAL,
        "widths": {a: (ARCHS[a]["quick_widths"] if args.quick else
                       {"cnn": (64, 64), "resnet": (256, 128)}[a]) for a in args.archs},
        "bf16": "StudioGAN: autocast(bf16) + its GradScaler kept; Mimicry: autocast(bf16), no "
                "scaler (it has no AMP); ours: trainer.precision=bf16-mixed",
        "unit": "seconds per generator step (n_dis D updates + 1 G update)",
    }
    result["results"] = measure(args, device)
    name = "peers_quick.json" if args.quick else "peers.json"
    out = Path(args.json) if args.json else ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
