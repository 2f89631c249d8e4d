"""Does compiling the captured step pay (speed.capture_step, training/captured_step.py)?

One training step (one D update, one G update, the EMA) of the default experiment's networks
(DCGAN, G ch 48, D ch 32, 1x32x32, batch 64, hinge, fused Adam) three ways, in one process:
``eager`` as training/gan.py takes it (backward, Adam's step), ``captured`` (the captured
functions run eagerly: the cost of their form) and ``compiled`` (the captured functions through
``torch.compile``, inductor; ``mode=reduce-overhead`` on CUDA, i.e. CUDA graphs). Interleaved
rounds; each reported as the median of its step times and the median ratio to eager's in the
same round (< 1 is faster). Writes benchmarks/results/captured_step[_gpu].json.

    .venv/bin/python benchmarks/captured_step.py --norm sn --rounds 3 --steps 10
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch.nn.utils import parametrize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spectral_gan.losses import get_loss  # noqa: E402
from spectral_gan.models import DCGANDiscriminator, DCGANGenerator  # noqa: E402
from spectral_gan.norms import NormHook, power_iteration_paused  # noqa: E402
from spectral_gan.training import captured_step as cs  # noqa: E402
from spectral_gan.training import ema as ema_lib  # noqa: E402
from spectral_gan.training.ema import EMASettings  # noqa: E402


def setup(norm: str, device: str, batch: int) -> dict:
    torch.manual_seed(0)
    G = DCGANGenerator((1, 32, 32), ch=48).to(device)
    D = DCGANDiscriminator((1, 32, 32), ch=32, norm=NormHook(norm)).to(device)
    adam = partial(torch.optim.Adam, lr=2e-4, betas=(0.0, 0.9), fused=True)
    ema = ema_lib.averaged_copy(G, EMASettings(0.995, 0))
    ema_lib.update(ema, G, 0.995, first=True)
    real = torch.rand(batch, 1, 32, 32, device=device) * 2 - 1
    return {"G": G, "D": D, "ema": ema, "d_opt": adam(D.parameters()),
            "g_opt": adam(G.parameters()), "loss": get_loss("hinge"), "real": real,
            "z": lambda: torch.randn(batch, 128, device=device)}


def eager_step(s: dict) -> None:
    G, D, loss = s["G"], s["D"], s["loss"]
    with torch.no_grad(), power_iteration_paused(G):
        fake = G(s["z"]())
    with parametrize.cached():
        d_loss = loss.d(D(s["real"]), D(fake))
        s["d_opt"].zero_grad(set_to_none=True)
        d_loss.backward()
    s["d_opt"].step()
    with cs.frozen(D), power_iteration_paused(D), parametrize.cached():
        g_loss = loss.g(D(G(s["z"]())))
        s["g_opt"].zero_grad(set_to_none=True)
        g_loss.backward()
    s["g_opt"].step()
    ema_lib.update(s["ema"], G, 0.995, first=False)


def captured(s: dict, compiled: bool, mode: str | None) -> callable:
    cs.prepare_adam(s["d_opt"]), cs.prepare_adam(s["g_opt"])
    d = partial(cs.d_update, s["G"], s["D"], s["loss"], s["d_opt"])
    g = partial(cs.g_update, s["G"], s["D"], s["loss"], s["g_opt"], ema=s["ema"], ema_decay=0.995)
    if compiled:
        d, g = cs.compile_update(d, mode), cs.compile_update(g, mode)

    def step(_: dict) -> None:
        d(s["real"], s["z"]())
        with cs.frozen(s["D"]):
            g(s["z"]())
    return step


def timed(step, s: dict, n: int, device: str) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step(s)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--norm", default="sn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    mode = "reduce-overhead" if args.device == "cuda" else None
    variants = {}
    for name in ("eager", "captured", "compiled"):
        s = setup(args.norm, args.device, args.batch)
        step = eager_step if name == "eager" else captured(s, name == "compiled", mode)
        t = time.perf_counter()
        for _ in range(3):  # warm-up (compilation included)
            step(s)
        variants[name] = {"state": s, "step": step, "warmup_s": time.perf_counter() - t, "s": []}
        print(f"{name}: warm-up {variants[name]['warmup_s']:.1f} s", flush=True)
    for r in range(args.rounds):
        for name, v in variants.items():
            v["s"].append(timed(v["step"], v["state"], args.steps, args.device))
            print(f"round {r + 1} {name}: {v['s'][-1] * 1000:.1f} ms", flush=True)
    out = {"date": time.strftime("%Y-%m-%d"), "device": args.device,
           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "norm": args.norm,
           "batch": args.batch, "rounds": args.rounds, "steps": args.steps, "mode": mode,
           "variants": {n: {"step_ms": statistics.median(v["s"]) * 1000,
                            "ratio": statistics.median(a / b for a, b in
                                                       zip(v["s"], variants["eager"]["s"])),
                            "warmup_s": v["warmup_s"], "raw_s": v["s"]}
                        for n, v in variants.items()}}
    name = "captured_step_gpu.json" if args.device == "cuda" else "captured_step.json"
    (ROOT / "benchmarks" / "results" / name).write_text(json.dumps(out, indent=2))
    for n, v in out["variants"].items():
        print(f"{n}: {v['step_ms']:.1f} ms, ratio {v['ratio']:.3f}")


if __name__ == "__main__":
    main()
