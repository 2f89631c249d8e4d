"""Check the default experiment over seeds and roundings: `make check-default`.

    python scripts/check_default.py                       # seeds 0-9 + three roundings of seed 0
    python scripts/check_default.py --seeds 0,1 --variants none --jobs 2
    python scripts/check_default.py --seeds 3 -- steps=800   # extra overrides after --
    python scripts/check_default.py --root outputs/check_default/<date_time>  # resume a stopped check

Each run is `spectral-gan-train experiment=mnist5k_sn seed=S` in a process and run directory of
its own (so runs may go in parallel with --jobs), timed; then its final checkpoint is scored by
the digit classifier (spectral_gan/report/digit_quality.py: classifier IS and FID of 2,000 EMA
samples, the fraction of samples per digit, collapse checks). The table (seed, wall time, IS,
FID, class balance, pass/fail) replaces the marked section of docs/results.md; the raw numbers go
to <root>/results.json. Exit status 1 when any run fails the required criteria.

Variants of seed 0 (other roundings of the same experiment, issue #12):
  threads1   OMP_NUM_THREADS=1
  bf16       trainer.precision=bf16-mixed
  nocl       speed.channels_last=false
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from spectral_gan.checkpoint import checkpoint_gen_step  # noqa: E402
from spectral_gan.hardware import describe  # noqa: E402
from spectral_gan.report import digit_quality as dq  # noqa: E402
from spectral_gan.report.sections import markers, write_marked_section  # noqa: E402

EXPERIMENT = "mnist5k_sn"
VARIANTS = {  # name: (overrides, environment)
    "threads1": ([], {"OMP_NUM_THREADS": "1"}),
    "bf16": (["trainer.precision=bf16-mixed"], {}),
    "nocl": (["speed.channels_last=false"], {}),
}
MARK_START, MARK_END = markers("check-default")


def parse_seeds(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]; 'none' or '' -> [] (only the variants)."""
    seeds: list[int] = []
    if text.strip() in ("", "none"):
        return seeds
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def run_dir_name(name: str) -> str:
    """'seed 0, bf16' -> 'seed0_bf16'"""
    return name.replace(", ", "_").replace(" ", "")


def score_digits(ckpt: str) -> dict:
    return dq.evaluate_digits(ckpt).as_dict()


def train_one(name: str, overrides: list[str], env: dict[str, str], run_dir: str,
              threads: int | None, experiment: str = EXPERIMENT,
              score: Callable[[str], dict] = score_digits) -> dict:
    """Train ``experiment`` with ``overrides`` in a process of its own, timed; ``score`` its
    final checkpoint (the result's ``quality``)."""
    cmd = [sys.executable, "-m", "spectral_gan.cli.train", f"experiment={experiment}",
           f"hydra.run.dir={run_dir}", "callbacks.progress_bar.refresh_rate=0", *overrides]
    full_env = dict(os.environ, PYTHONWARNINGS="ignore", **env)
    if threads and "OMP_NUM_THREADS" not in env:
        full_env["OMP_NUM_THREADS"] = str(threads)
    os.makedirs(run_dir, exist_ok=True)
    started = time.monotonic()
    with open(os.path.join(run_dir, "stdout.txt"), "w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    result = {"name": name, "command": " ".join(f"{k}={v}" for k, v in env.items()) +
              (" " if env else "") + "spectral-gan-train " + " ".join(cmd[3:4] + overrides),
              "wall_s": round(wall, 1), "returncode": proc.returncode, "run_dir": run_dir,
              "threads": full_env.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    ckpt = os.path.join(run_dir, "checkpoints", "last.ckpt")
    if proc.returncode == 0 and os.path.exists(ckpt):
        result["quality"] = score(ckpt)
    print(f"{name}: exit {proc.returncode}, {wall / 60:.1f} min"
          + (f", IS {result['quality']['is_classifier']:.2f}, FID {result['quality']['fid_classifier']:.1f}"
             if "quality" in result else ""), flush=True)
    return result


def run_jobs(jobs: list[tuple], n_jobs: int, train_job: Callable[[tuple], dict],
             on_done: Callable[[str, dict], None]) -> None:
    """Train every job (``train_job(job)``, a job's first item its name), ``n_jobs`` at once;
    ``on_done(name, result)`` after each, one at a time (it rewrites the report)."""
    lock = threading.Lock()

    def run(job: tuple) -> None:
        result = train_job(job)
        with lock:
            on_done(job[0], result)

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        list(pool.map(run, jobs))


def resume(jobs: list[tuple], seed_names: list[str], saved_path: str) -> dict[str, dict]:
    """The scored runs of an earlier check under the same root (its results.json), by name, so a
    check stopped part-way goes on where it stopped. Earlier runs this invocation does not ask
    for are appended to ``jobs`` (and ``seed_names``) so the table and the FID median cover them."""
    with open(saved_path) as f:
        # a run that failed or was never scored is trained again
        previous = {r["name"]: r for r in json.load(f)["runs"] if "quality" in r}
    names = {job[0] for job in jobs}
    for name in previous:
        if name not in names:
            jobs.append((name, [], {}))
            if "," not in name:
                seed_names.append(name)
    return previous


def judge(results: list[dict], seed_names: list[str], real_is: float) -> float:
    scored = {r["name"]: dq.DigitQuality(**r["quality"]) for r in results if "quality" in r}
    seeds = [q for name, q in scored.items() if name in seed_names]
    median = dq.median_fid(seeds) if seeds else float("nan")
    for r in results:
        r["verdict"] = (dq.verdict(scored[r["name"]], median, real_is) if r["name"] in scored else
                        {"passed": False, "balanced": False, "fid_ok": False, "is_target": False,
                         "is_ratio": float("nan")})
    return median


GPU_OVERRIDES = ("trainer=gpu", "trainer.accelerator=gpu", "trainer.accelerator=cuda")


def device_of(overrides: list[str]) -> str:
    """What the runs train on, for the table: the GPU (and host CPU) or the CPU's model."""
    return describe(gpu=any(o in GPU_OVERRIDES for o in overrides))


def table(results: list[dict], median: float, real_is: float, when: str,
          device: str | None = None) -> str:
    def mark(ok: bool) -> str:
        return "yes" if ok else "**no**"

    where = device or f"{os.cpu_count()} CPU cores"  # checks saved before the device was recorded
    lines = [
        f"Measured {when} by `make check-default` on {where}: each run is "
        f"`spectral-gan-train experiment={EXPERIMENT}` with the override named, scored on 2,000 "
        f"EMA samples by the digit classifier. Real held-out digits score classifier IS "
        f"{real_is:.2f}, so the IS target (0.7x) is {dq.IS_TARGET * real_is:.2f}. Required: every "
        f"class {dq.CLASS_MIN:.0%}-{dq.CLASS_MAX:.0%} of the predictions, FID at most "
        f"{dq.FID_FACTOR:g}x the median over the seeds ({median:.0f}, so <= "
        f"{dq.FID_FACTOR * median:.0f}), no collapse.",
        "",
        "| run | wall time | classifier IS | IS / real | classifier FID | classes min-max | "
        "balanced | FID ok | IS target | pass |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        v = r["verdict"]
        if "quality" not in r:
            lines.append(f"| {r['name']} | {r['wall_s'] / 60:.1f} min | failed (exit "
                         f"{r['returncode']}) | | | | | | | **no** |")
            continue
        q = r["quality"]
        fr = q["class_fractions"]
        lines.append(
            f"| {r['name']} | {r['wall_s'] / 60:.1f} min | {q['is_classifier']:.2f} | "
            f"{v['is_ratio']:.2f} | {q['fid_classifier']:.0f} | {min(fr):.1%}-{max(fr):.1%} | "
            f"{mark(v['balanced'])} | {mark(v['fid_ok'])} | {mark(v['is_target'])} | "
            f"{mark(v['passed'])} |")
    variants = [f"{r['name']}: `{r['command']}`" for r in results if "," in r["name"]]
    lines += ["", f"Commands: seed S: `spectral-gan-train experiment={EXPERIMENT} seed=S`"
              + "".join(f"; {v}" for v in variants) + "."]
    return "\n".join(lines)


def write_section(path: str, body: str) -> None:
    write_marked_section(path, "check-default", body, "The default experiment over seeds")


def measured_on(results_json: str, saved: dict) -> str:
    """The date of a check: saved in its results.json, else its root's name when that is the
    default <date_time>, else the file's modification date (a root named by hand)."""
    if saved.get("when"):
        return saved["when"][:10]
    name = os.path.basename(os.path.dirname(os.path.abspath(results_json)))
    try:
        return datetime.datetime.strptime(name[:10], "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        return datetime.date.fromtimestamp(os.path.getmtime(results_json)).isoformat()


def render(results_json: str, results_md: str) -> int:
    """Rewrite the table from a finished check's results.json (with today's criteria)."""
    with open(results_json) as f:
        saved = json.load(f)
    runs, real_is = saved["runs"], saved["real_heldout_is"]
    median = judge(runs, [r["name"] for r in runs if "," not in r["name"]], real_is)
    body = table(runs, median, real_is, measured_on(results_json, saved), saved.get("device"))
    if saved.get("rescored"):
        body += (f"\n\nThe checkpoints of this check were scored again on {saved['rescored']} "
                 "(`python scripts/check_default.py --rescore <root>`), with the scoring code of "
                 "that day.")
    write_section(results_md, body)
    print(body)
    return 0 if all(r["verdict"]["passed"] for r in runs) else 1


def rescore(root: str, results_md: str) -> int:
    """Score each run of an earlier check again (its checkpoints, today's scoring code) and
    rewrite its results.json and the table; wall times stay those of the training runs."""
    path = os.path.join(root, "results.json")
    with open(path) as f:
        saved = json.load(f)
    for r in saved["runs"]:
        ckpt = os.path.join(r["run_dir"], "checkpoints", "last.ckpt")
        if not os.path.exists(ckpt):
            continue
        step = checkpoint_gen_step(ckpt)
        if "quality" in r and step != r["quality"]["gen_step"]:  # e.g. overwritten by a later run
            print(f"{r['name']}: {ckpt} is at generator step {step}, not the "
                  f"{r['quality']['gen_step']} scored before; its earlier score is kept", flush=True)
            continue
        r["quality"] = dq.evaluate_digits(ckpt).as_dict()
        print(f"{r['name']}: FID {r['quality']['fid_classifier']:.0f}", flush=True)
    saved["real_heldout_is"] = dq.real_heldout_is()
    saved["rescored"] = datetime.datetime.now().strftime("%Y-%m-%d")
    with open(path, "w") as f:
        json.dump(saved, f, indent=2)
    return render(path, results_md)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"roundings of seed 0 to run too: {', '.join(VARIANTS)}, or none")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once; each then gets cores/jobs threads (default 1: the "
                             "thread count make run uses)")
    parser.add_argument("--root", default=None, help="where runs go (default "
                        "outputs/check_default/<date_time>)")
    parser.add_argument("--results", default=os.path.join(REPO, "docs", "results.md"))
    parser.add_argument("--render", metavar="RESULTS_JSON", default=None,
                        help="train nothing: write the table of an earlier check's results.json")
    parser.add_argument("--rescore", metavar="ROOT", default=None,
                        help="train nothing: score every run's last.ckpt under an earlier check's "
                             "ROOT again (after a change of the scoring) and rewrite the table")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    if args.render:
        return render(args.render, args.results)
    if args.rescore:
        return rescore(args.rescore, args.results)
    variants = [] if args.variants in ("", "none") else args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; valid: {', '.join(VARIANTS)}, none")
    when = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    root = args.root or os.path.join(REPO, "outputs", "check_default", when)
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None

    jobs = [(f"seed {s}", [f"seed={s}", *args.overrides], {}) for s in parse_seeds(args.seeds)]
    jobs += [(f"seed 0, {v}", [*VARIANTS[v][0], "seed=0", *args.overrides], VARIANTS[v][1])
             for v in variants]
    real_is = dq.real_heldout_is()
    device = device_of(args.overrides)
    seed_names = [name for name, _, _ in jobs if "," not in name]
    done: dict[str, dict] = {}
    if args.root and os.path.exists(os.path.join(root, "results.json")):
        done = resume(jobs, seed_names, os.path.join(root, "results.json"))
        print(f"resuming {root}: {len(done)} run(s) already done", flush=True)

    def report() -> str:
        """Table and JSON of the runs finished so far, in job order (rewritten after each run,
        so a long check that is stopped still leaves its table)."""
        results = [done[name] for name, _, _ in jobs if name in done]
        median = judge(results, seed_names, real_is)
        body = table(results, median, real_is, when[:10], device)
        if len(results) < len(jobs):
            body += f"\n\n(partial: {len(results)} of {len(jobs)} runs finished so far)"
        with open(os.path.join(root, "results.json"), "w") as f:
            json.dump({"real_heldout_is": real_is, "median_fid": median, "device": device,
                       "when": when, "runs": results}, f, indent=2)
        write_section(args.results, body)
        return body

    def finished(name: str, result: dict) -> None:
        done[name] = result
        report()

    os.makedirs(root, exist_ok=True)
    todo = [job for job in jobs if job[0] not in done]
    run_jobs(todo, args.jobs, lambda job: train_one(*job, os.path.join(root, run_dir_name(job[0])),
                                                    threads), finished)
    print(report())
    print(f"\nwrote {args.results} and {os.path.join(root, 'results.json')}")
    results = list(done.values())
    return 0 if all(r["verdict"]["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
