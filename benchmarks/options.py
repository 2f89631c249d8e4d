"""`make bench-options`: the measured effect of each speed switch against the defaults.

Every variant runs the real `spectral-gan-train` path (the `make bench` model: SN-paper CNN,
ch 64, 32x32, batch 64, n_dis 1, hinge, SN) in a subprocess; variants are interleaved over
`--rounds` rounds and each is reported as the median ratio of its step time to the default
configuration's in the same round (< 1 is faster). GPU-only switches are skipped on the CPU.

Writes benchmarks/results/options.json and the table between the options markers in
docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench import ROOT, train_step_time
from devtools.hardware import cpu_model, describe, gpu_name

# name: (overrides, GPU only, what it shows[, the variant it is measured against])
VARIANTS = {
    "defaults": ([], False, "channels_last inputs, fp32, fused Adam, deferred divergence check"),
    "channels_last=false": (["speed.channels_last=false"], False, "NCHW everywhere"),
    "channels_last_weights=true": (["speed.channels_last_weights=true"], False, "NHWC weights too"),
    "bf16-mixed": (["trainer.precision=bf16-mixed"], False, "bf16 autocast, power iteration fp32"),
    "16-mixed": (["trainer.precision=16-mixed"], True, "fp16 autocast + GradScaler"),
    "compile=true": (["speed.compile=true"], False, "torch.compile of G and D (inductor)"),
    "cudnn_benchmark=false": (["speed.cudnn_benchmark=false"], True, "cuDNN heuristics only"),
    "matmul_precision=highest": (["speed.matmul_precision=highest"], True, "no TF32 matmuls"),
    "data.on_device=false": (["data.on_device=false"], True, "a host-to-device copy per batch"),
    "joint_d_pass=true": (["speed.joint_d_pass=true"], False, "real and fake in one D pass"),
    "divergence.check=every_update": (["divergence.check=every_update"], False,
                                      "host sync on each loss"),
    "norm=msn": (["norm=msn"], False, "MSN with the defaults (ratio against SN's defaults)"),
    "norm=msn compile=true": (["norm=msn", "speed.compile=true"], False,
                              "MSN compiled: can inductor fuse the centering's passes?", "norm=msn"),
}


def baseline(name: str, measured: list[str]) -> str:
    """The variant ``name`` is compared with: its own if it names one that was measured."""
    spec = VARIANTS[name]
    return spec[3] if len(spec) > 3 and spec[3] in measured else "defaults"


def markdown(r: dict) -> str:
    lines = [f"Measured {r['date']} on {r['device']}, torch {r['torch']}; `make bench` model with "
             f"SN, {r['rounds']} interleaved rounds of {r['steps']} steps (compile: "
             f"{r['compile_warmup']} warm-up steps excluded). Ratio = step time / the step time "
             f"of the variant it is measured against, in the same round, median (< 1 is faster). Reproduce: `make bench-options`.", "",
             "| variant | what | step (ms) | ratio | against |", "|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        lines.append(f"| `{name}` | {v['what']} | {v['step_ms']:.0f} | {v['ratio']:.3f} | "
                     f"`{v.get('baseline', 'defaults')}` |")
    if r["skipped"]:
        lines += ["", "Not measured on this device (GPU only): "
                  + ", ".join(f"`{n}`" for n in r["skipped"]) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--compile-warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    gpu = torch.cuda.is_available() and args.device != "cpu"
    names = [n for n in args.variants if gpu or not VARIANTS[n][1]]
    if "defaults" not in names:
        names.insert(0, "defaults")
    common = ["batch_size=64", "generator.ch=64", "discriminator.ch=64"]  # norm: sn, the default
    times: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for n in names:
            compiled = "compile=true" in n
            res = train_step_time([*common, *VARIANTS[n][0]],
                                  args.steps + (args.compile_warmup - 3 if compiled else 0),
                                  args.device, warmup=args.compile_warmup if compiled else 3)
            times[n].append(res["median_s"])
            print(f"round {round_ + 1} {n}: {res['median_s'] * 1000:.0f} ms", flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": describe(gpu, torch.get_num_threads()),
        "cpu": cpu_model(), "gpu": gpu_name() if gpu else None,
        "torch": torch.__version__, "rounds": args.rounds, "steps": args.steps,
        "compile_warmup": args.compile_warmup,
        "variants": {n: {"what": VARIANTS[n][2], "step_ms": statistics.median(t) * 1000,
                         "baseline": baseline(n, names),
                         "ratio": statistics.median(a / b for a, b in zip(t, times[baseline(n, names)])),
                         "raw_s": t} for n, t in times.items()},
        "skipped": [n for n in args.variants if n not in names],
    }
    out = ROOT / "benchmarks" / "results" / ("options_gpu.json" if gpu else "options.json")
    out.write_text(json.dumps(result, indent=2))
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    tag = "options-gpu" if gpu else "options"
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    table = f"{start}\n{markdown(result)}\n{end}"
    text = (text[:text.index(start)] + table + text[text.index(end) + len(end):]
            if start in text else text.rstrip() + f"\n\n## Speed switches ({'GPU' if gpu else 'CPU'})\n\n"
            + table + "\n")
    doc.write_text(text)
    print(markdown(result))


if __name__ == "__main__":
    main()
