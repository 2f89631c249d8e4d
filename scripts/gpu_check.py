"""`make gpu-check`: the GPU path run for real, on a machine with a CUDA GPU.

    python scripts/gpu_check.py --out outputs/gpu_check            # everything (~8 min on an H100)
    python scripts/gpu_check.py --out DIR --skip seeds bench        # the smoke runs alone

On a machine without a CUDA GPU it says so and exits 0 (nothing to check); --dry-run-cpu runs
the stages on the CPU instead, to try this script.

Stages, each in processes of their own (as a user runs `spectral-gan-train`):
  pytest  the GPU-marked tests (`pytest -m gpu`, tests/test_gpu.py): trainer=gpu, 16-mixed and
          bf16-mixed, a gradient penalty under 16-mixed, DDP on every GPU present, speed.compile
          and the joint D pass, each a few generator steps through the training path. (With
          --dry-run-cpu they skip: they need CUDA.)
  smoke   short runs with `trainer=gpu` of every normalization preset, AMP (`bf16-mixed`,
          `16-mixed`, gradient penalty under fp16), `trainer=ddp trainer.devices=1` and a resume
          from `last.ckpt`; each must exit 0, train on the GPU and leave finite losses.
  seeds   the default experiment (`experiment=mnist5k_sn trainer=gpu`) on seeds 0-9, scored by
          the digit classifier with the criteria of `make check-default` (scripts/check_default.py).
  bench   `make bench` on the GPU (benchmarks/bench.py --device cuda), written to its own section.

Writes <out>/gpu_check.md (a summary for docs/benchmarks.md), <out>/gpu_check.json and the
stages' own outputs. Exit status 1 if any stage failed, 0 when all passed or there is no GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from devtools.hardware import cpu_model  # noqa: E402
from spectral_gan.report.runs import read_run  # noqa: E402

TRAIN = [sys.executable, "-m", "spectral_gan.cli.train"]
QUIET = ["debug=quiet"]  # configs/debug/quiet.yaml: no progress bar, evaluation at the end only
SMOKE_STEPS = 60
TRAINER = "gpu"  # "cpu" with --dry-run-cpu (to try this script without a GPU)
# name: overrides (on top of the default experiment, trainer=gpu, a short run)
SMOKE = {
    **{f"norm={n}": [f"norm={n}"] for n in ("none", "sn", "bsn", "msn", "osn", "gp", "bn")},
    "sn bf16-mixed": ["trainer.precision=bf16-mixed"],
    "sn 16-mixed": ["trainer.precision=16-mixed"],
    "gp 16-mixed": ["norm=gp", "trainer.precision=16-mixed"],
    "ddp, 1 GPU": ["trainer=ddp", "trainer.devices=1"],
    # experiment=mnist5k_cond's networks: labels on the device, CBN, the projection head
    "conditional bf16-mixed": ["generator.conditional=true", "discriminator.conditional=projection",
                               "trainer.precision=bf16-mixed"],
}


def run(cmd: list[str], log: str, timeout: float, env: dict | None = None) -> tuple[int, float]:
    started = time.monotonic()
    with open(log, "w") as out:
        try:
            rc = subprocess.run(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                                env=dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.monotonic() - started


def used_gpu(log: str) -> bool:
    if TRAINER == "cpu":
        return True
    text = open(log, errors="replace").read()
    return bool(re.search(r"GPU available: True \(cuda\), used: True", text))


def finite_losses(run_dir: str) -> bool:
    """Last logged loss/d and loss/g are finite (read back from the run's TensorBoard events by
    the reader spectral-gan-compare uses)."""
    run = read_run(run_dir)
    tags = [t for t in ("loss/d", "loss/g") if run is not None and run.scalars.get(t)]
    return bool(tags) and all(math.isfinite(run.scalars[t][-1][1]) for t in tags)


def gpu_tests(out: str, timeout: float) -> dict:
    """``pytest -m gpu``: the GPU-marked tests, with pytest's counts from its last line."""
    log = os.path.join(out, "pytest.log")
    rc, wall = run([sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider",
                    os.path.join(REPO, "tests")], log, timeout)
    lines = [ln.strip("= \n") for ln in open(log, errors="replace") if ln.strip()]
    tail = lines[-1] if lines else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", tail)}
    # exit 5: nothing selected/collected; every test skipped (no CUDA) is exit 0 with "skipped"
    r = {"rc": rc, "wall_s": round(wall, 1), "summary": tail, "counts": counts,
         "passed": rc == 0}
    print(f"pytest -m gpu: {tail or f'exit {rc}'} ({wall:.0f} s)", flush=True)
    return r


def smoke(out: str, jobs: int) -> list[dict]:
    root = os.path.join(out, "smoke")
    os.makedirs(root, exist_ok=True)

    def one(item: tuple[str, list[str]]) -> dict:
        name, overrides = item
        run_dir = os.path.join(root, re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_"))
        cmd = [*TRAIN, "experiment=mnist5k_sn", f"trainer={TRAINER}", *overrides, f"steps={SMOKE_STEPS}",
               f"hydra.run.dir={run_dir}", "log_every=10", *QUIET]
        os.makedirs(run_dir, exist_ok=True)
        log = os.path.join(run_dir, "stdout.txt")
        rc, wall = run(cmd, log, 300)
        r = {"name": name, "overrides": " ".join(overrides), "rc": rc, "wall_s": round(wall, 1),
             "gpu": used_gpu(log), "finite": finite_losses(run_dir) if rc == 0 else False}
        if name == "norm=sn" and rc == 0:  # resume: the same overrides, twice the steps
            ckpt = os.path.join(run_dir, "checkpoints", "last.ckpt")
            rlog = os.path.join(run_dir, "resume.txt")
            rcmd = [c if not c.startswith("steps=") else f"steps={2 * SMOKE_STEPS}" for c in cmd]
            rc2, wall2 = run([*rcmd, f"ckpt_path={ckpt}"], rlog, 300)
            r["resume"] = {"rc": rc2, "wall_s": round(wall2, 1), "gpu": used_gpu(rlog)}
        r["passed"] = rc == 0 and r["gpu"] and r["finite"] is not False and \
            r.get("resume", {}).get("rc", 0) == 0
        print(f"smoke {name}: {'ok' if r['passed'] else 'FAILED'} ({wall:.0f} s)", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, SMOKE.items()))


def seeds(out: str, jobs: int, timeout: float) -> dict:
    root = os.path.join(out, "seeds")
    md = os.path.join(out, "seeds.md")
    cmd = [sys.executable, os.path.join(REPO, "scripts", "check_default.py"), "--seeds", "0-9",
           "--variants", "none", "--jobs", str(jobs), "--root", root, "--results", md,
           "--", f"trainer={TRAINER}"]
    rc, wall = run(cmd, os.path.join(out, "seeds.log"), timeout)
    print(f"seeds: exit {rc} ({wall:.0f} s)", flush=True)
    return {"rc": rc, "wall_s": round(wall, 1), "jobs": jobs}


def bench(out: str, timeout: float, args: list[str]) -> dict:
    cmd = [sys.executable, os.path.join(REPO, "benchmarks", "bench.py"),
           "--device", "cuda" if TRAINER == "gpu" else "cpu",
           "--section", "bench-gpu", "--json", os.path.join(out, "bench.json"), *args]
    rc, wall = run(cmd, os.path.join(out, "bench.log"), timeout)
    print(f"bench: exit {rc} ({wall:.0f} s)", flush=True)
    return {"rc": rc, "wall_s": round(wall, 1), "args": args}


def summary(result: dict) -> str:
    lines = [f"GPU check {result['date']} on {result['device']}, torch {result['torch']}, "
             f"{result['cpus']} CPU cores ({result.get('cpu', 'CPU model not recorded')}) "
             "(`make gpu-check`).", ""]
    if "pytest" in result:
        t = result["pytest"]
        lines += [f"GPU-marked tests (`pytest -m gpu`): {t['summary'] or 'no summary'} "
                  f"(exit {t['rc']}, {t['wall_s']} s).", ""]
    if "smoke" in result:
        lines += [f"Smoke runs ({SMOKE_STEPS} generator steps each, `experiment=mnist5k_sn "
                  "trainer=gpu` plus the override; run in parallel):", "",
                  "| run | exit | on GPU | finite losses | wall (s) | resume |", "|---|---|---|---|---|---|"]
        for r in result["smoke"]:
            res = r.get("resume")
            lines.append(f"| {r['name']} | {r['rc']} | {r['gpu']} | {r['finite']} | {r['wall_s']} | "
                         + (f"exit {res['rc']}, on GPU {res['gpu']}" if res else "") + " |")
    for stage in ("seeds", "bench"):
        if stage in result:
            s = result[stage]
            lines += ["", f"{stage}: exit {s['rc']}, {s['wall_s']} s"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "outputs", "gpu_check"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["pytest", "smoke", "seeds", "bench"])
    parser.add_argument("--jobs", type=int, default=6, help="smoke and seed runs at once")
    parser.add_argument("--pytest-timeout", type=float, default=600)
    parser.add_argument("--seeds-timeout", type=float, default=600)
    parser.add_argument("--bench-timeout", type=float, default=600)
    parser.add_argument("--bench-args", default="--repeats 3 --no-scaling --peer-repeats 1",
                        help='options for benchmarks/bench.py, one string: --bench-args="--repeats 5"')
    parser.add_argument("--dry-run-cpu", action="store_true",
                        help="run the stages on the CPU (to try this script; measures nothing)")
    args = parser.parse_args()
    import torch
    global TRAINER
    TRAINER = "cpu" if args.dry_run_cpu else "gpu"
    if not torch.cuda.is_available() and not args.dry_run_cpu:
        print(f"gpu-check: no CUDA GPU on this machine (torch {torch.__version__}: "
              "torch.cuda.is_available() is False), so there is nothing to check; the CPU path is "
              "`make test` (or try this script with --dry-run-cpu).")
        return 0
    os.makedirs(args.out, exist_ok=True)
    result = {"date": time.strftime("%Y-%m-%d"),
              "device": torch.cuda.get_device_name() if TRAINER == "gpu" else "CPU (dry run)",
              "torch": torch.__version__, "cpus": os.cpu_count(), "cpu": cpu_model()}
    path = os.path.join(args.out, "gpu_check.json")

    def save() -> None:
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
            f.write(summary(result) + "\n")

    if "pytest" not in args.skip:
        result["pytest"] = gpu_tests(args.out, args.pytest_timeout)
        save()
    if "smoke" not in args.skip:
        result["smoke"] = smoke(args.out, args.jobs)
        save()
    if "seeds" not in args.skip:
        result["seeds"] = seeds(args.out, min(args.jobs * 2, 10), args.seeds_timeout)
        save()
    if "bench" not in args.skip:
        result["bench"] = bench(args.out, args.bench_timeout, shlex.split(args.bench_args))
        save()
    print(summary(result))
    ok = result.get("pytest", {}).get("passed", True) and all(
        r["passed"] for r in result.get("smoke", [])) and all(
        result[s]["rc"] == 0 for s in ("seeds", "bench") if s in result)
    shutil.rmtree(os.path.join(args.out, "__pycache__"), ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
