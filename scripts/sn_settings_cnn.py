"""The SN paper's robustness study with CNNs on one GPU (issue 37, item 4).

    python scripts/sn_settings_cnn.py --jobs 14 --budget 520 --out DIR   # a GPU machine; resumable
    python scripts/sn_settings_cnn.py --dry-run                  # all 84 runs, 2 steps, on the CPU
    python scripts/sn_settings_cnn.py --dry-run --settings F --norms gp --seeds 0 --steps 1
    python scripts/sn_settings_cnn.py --bundle outputs/device_site   # hydra for a bare GPU image

Miyato et al. (ICLR 2018), Table 1's optimizer settings A-F x the seven normalizations of the MLP
study (docs/results.md, "The SN paper's settings on mnist5k") x seeds 0 and 1: 84 runs of
`spectral-gan-train experiment=mnist5k_sn_settings_cnn` (the default experiment's CNNs and 1,600
generator steps, no EMA, fp32), each a process of its own, --jobs at once sharing the one GPU.
Each run is scored as the MLP study's were: the end-of-training evaluation on 2,000 samples of
the trained generator by the digit classifier (classifier FID and IS, read back from the run's
TensorBoard events; collapsed: IS below 1.5).

Resumable: the runs already in the data file (docs/results/sn_settings_cnn.json, or --data) are
not run again, so the study can span calls of a device machine that starts bare each time. With
--budget S the runner starts a run only while its expected wall time (measured on this call's
finished runs, else PRIOR_S) ends within S seconds of the start, and stops the runs still going at
S; they run again in the next call. After each run the data file and the tables in docs/results.md
(or --results) are rewritten, and copied to --out. Without a GPU only --dry-run trains.

On a bare GPU machine (its python3 has torch, Lightning and the rest, not hydra, and fetches
nothing): write the bundle here, carry outputs/device_site, run from the repository's root
    export PYTHONPATH=$PWD:$PWD/outputs/device_site SPECTRAL_GAN_OUTPUTS=/tmp/sg
    python3 scripts/sn_settings_cnn.py --budget 520 --out $OUT
then copy $OUT/sn_settings_cnn.json to docs/results/ here and `make results`; again until it says
0 still to run (about 15-25 GPU minutes for the 84 runs: two or three such calls).
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sn_settings_cnn_tables as tb  # noqa: E402

EXPERIMENT = "mnist5k_sn_settings_cnn"
STUDY = "sn_settings_cnn"
HEADING = "The SN paper's settings on mnist5k with CNNs"
DATA = os.path.join(REPO, "docs", "results", f"{STUDY}.json")
RESULTS_MD = os.path.join(REPO, "docs", "results.md")
# Expected wall time of one run (s) with ~14 sharing a GPU, before this call has measured any: the
# default (n_dis 1) took 1.2-1.3 min with 10 sharing an H200 and about 2 min with 12 sharing an
# H100, ~35 s of it start-up and the final evaluation (docs/results.md, docs/benchmarks.md);
# n_dis 5 does ~3.3x the step's kernel launches (the peers' n_dis-5 loop: 50 ms a step against
# 14 ms for n_dis 1 on the H200). The high ends, so a call starts no run it cannot finish.
PRIOR_S = {1: 120.0, 5: 300.0}
# Overrides of every run: the quiet extras (no progress bar, no periodic samples or checkpoints),
# the loss scalars every 50 steps as in the default (the divergence check acts at log steps).
QUIET = ["debug=quiet", "log_every=50"]
DRY = ["eval.num_samples=250", "eval.batch_size=250"]  # --dry-run: a small evaluation
BUNDLE = ("hydra-core", "omegaconf", "antlr4-python3-runtime")  # not in the GPU image (KINDS.md)


def plan(settings: list[str], norms: list[str], seeds: list[int]) -> list[dict]:
    """The runs, seed by seed (a partial study has one seed of every cell first), the n_dis-5
    settings first within a seed (the long runs first pack a budget best)."""
    jobs = [{"setting": s, "norm": n, "seed": seed, "n_dis": tb.n_dis(s)}
            for seed in seeds for s in settings for n in norms]
    return sorted(jobs, key=lambda j: (j["seed"], -j["n_dis"]))


def key(run: dict) -> tuple:
    return run["setting"], run["norm"], run["seed"]


def overrides(job: dict, trainer: str, steps: int | None, extra: list[str]) -> list[str]:
    return [f"experiment={EXPERIMENT}", f"sn_setting={job['setting']}", f"norm={job['norm']}",
            f"seed={job['seed']}", f"trainer={trainer}", *QUIET,
            *([f"steps={steps}"] if steps else []), *extra]


def score(run_dir: str) -> dict:
    """The run's last evaluation (at its last step) and whether it diverged, from its events."""
    from spectral_gan.report.runs import read_run

    run = read_run(run_dir)
    if run is None:
        return {}
    tags = {"fid": "fid_classifier", "is": "is_classifier",  # precision, recall: where logged (PRDC)
            "precision": "precision_classifier", "recall": "recall_classifier"}
    out = {k: round(v, 4) for k, t in tags.items() if (v := run.final(f"metrics/{t}")) is not None}
    return {**out, "last_step": run.last_step, "diverged": run.diverged}


def train(job: dict, root: str, args, deadline: float | None) -> dict | None:
    """One run in a process of its own; None when stopped at the deadline (run again later)."""
    run_dir = os.path.join(root, f"{job['setting']}_{job['norm']}_seed{job['seed']}")
    shutil.rmtree(run_dir, ignore_errors=True)  # a run stopped in an earlier call starts afresh
    os.makedirs(run_dir)
    words = overrides(job, args.trainer, args.steps, args.overrides)
    cmd = [sys.executable, "-m", "spectral_gan.cli.train", *words, f"hydra.run.dir={run_dir}"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    started = time.monotonic()
    with open(os.path.join(run_dir, "stdout.txt"), "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=None if deadline is None else max(1.0, deadline - started))
        except subprocess.TimeoutExpired:
            proc.terminate()  # SIGTERM: the run saves last.ckpt and exits
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            print(f"{job['setting']} {job['norm']} seed {job['seed']}: stopped at the budget",
                  flush=True)
            return None
    wall = time.monotonic() - started
    result = {**job, "command": "spectral-gan-train " + " ".join(words), "returncode": rc,
              "wall_s": round(wall, 1), **score(run_dir)}
    print(f"{job['setting']} {job['norm']} seed {job['seed']}: exit {rc}, {wall:.0f} s"
          + (f", FID {result['fid']:.0f}, IS {result['is']:.2f}" if tb.scored(result) else ""),
          flush=True)
    return result


def schedule(jobs: list[dict], n_jobs: int, deadline: float | None, run, expected) -> list[dict]:
    """Run ``jobs`` on ``n_jobs`` workers; each takes the first job whose ``expected`` wall
    time ends before the deadline. The jobs never started are returned."""
    pending, lock = list(jobs), threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                now = time.monotonic()
                job = next((j for j in pending if deadline is None
                            or now + expected(j) <= deadline), None)
                if job is None:
                    return
                pending.remove(job)
            run(job)

    workers = [threading.Thread(target=worker) for _ in range(n_jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return pending


def environment(trainer: str) -> dict:
    import torch

    from devtools.hardware import describe

    return {"date": datetime.date.today().isoformat(), "device": describe(gpu=trainer == "gpu"),
            "torch": torch.__version__, "cuda": torch.version.cuda, "cpus": os.cpu_count()}


def study(runs: list[dict], calls: list[dict], steps: int, commit: str) -> dict:
    return {
        "study": STUDY,
        "description": "The SN paper's (Miyato et al. 2018, Table 1) optimizer settings A-F x seven "
                       "normalizations x seeds 0 and 1 on mnist5k with the default experiment's "
                       f"CNNs and length (experiment={EXPERIMENT}: generator ch 48, discriminator "
                       f"ch 32, hinge loss, batch 64, {steps:,} generator steps, no EMA, fp32), "
                       "scored at the end on 2,000 samples by the digit classifier (FID, IS; "
                       "collapsed: IS below 1.5), as the MLP study (sn_settings.json).",
        "provenance": f"Written by scripts/sn_settings_cnn.py (commit {commit}) over "
                      f"{len(calls)} call(s) (table calls), each resuming from this file; the "
                      "run directories stayed on the machines.",
        "commit": commit, "device": "; ".join(sorted({c["device"] for c in calls})),
        "date": calls[-1]["date"] if calls else "", "torch": calls[-1]["torch"] if calls else "",
        "cuda": calls[-1]["cuda"] if calls else None, "steps": steps, "seeds": list(tb.SEEDS),
        "commands": sorted({r["command"].replace(f"seed={r['seed']}", "seed=S") for r in runs}),
        "tables": tb.tables(runs, calls, steps), "calls": calls,
        "runs": sorted(runs, key=lambda r: (r["seed"], tb.SETTINGS.index(r["setting"]),
                                            tb.NORMS.index(r["norm"]))),
    }


def write_out(out: str, data_file: str, rendered: str, root: str) -> None:
    """What a device call brings back (at most 8 files): the data, the tables, the final
    sample grids and the logs' tails of the runs that failed."""
    os.makedirs(out, exist_ok=True)
    shutil.copy(data_file, os.path.join(out, f"{STUDY}.json"))
    with open(os.path.join(out, f"{STUDY}.md"), "w") as f:
        f.write(rendered + "\n")
    with tarfile.open(os.path.join(out, "samples.tar.gz"), "w:gz") as tar:
        for png in sorted(glob.glob(os.path.join(root, "*", "samples", "*.png"))):
            tar.add(png, arcname=os.path.relpath(png, root))
    with open(os.path.join(out, "failed_tails.txt"), "w") as f:
        for log in sorted(glob.glob(os.path.join(root, "*", "stdout.txt"))):
            text = open(log, errors="replace").read()
            if "Traceback" in text or "Error" in text:
                f.write(f"== {log}\n" + "\n".join(text.splitlines()[-30:]) + "\n")


def bundle(dest: str) -> None:
    """Copy the pure-Python packages the GPU image lacks (hydra, omegaconf, antlr4) from this
    environment into ``dest``, for PYTHONPATH there (nothing can be fetched on that machine)."""
    from importlib.metadata import distribution

    for name in BUNDLE:
        dist = distribution(name)
        site = str(dist.locate_file(""))
        tops = {str(f).split("/")[0] for f in dist.files if not str(f).startswith("..")}
        for top in sorted(tops):
            src, dst = os.path.join(site, top), os.path.join(dest, top)
            if os.path.isdir(src):
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
    print(f"{dest}: {', '.join(BUNDLE)} (carry it; PYTHONPATH=$PWD:$PWD/{os.path.relpath(dest, REPO)})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2),
                   help="runs at once (default: the cores less two)")
    p.add_argument("--budget", type=float, default=None, help="seconds this call may train")
    p.add_argument("--dry-run", action="store_true", help="on the CPU, --steps each, data and "
                   "tables under --root (docs untouched)")
    p.add_argument("--steps", type=int, default=None, help="generator steps (default: the "
                   "experiment's 1,600; 2 with --dry-run)")
    p.add_argument("--settings", default=",".join(tb.SETTINGS))
    p.add_argument("--norms", default=",".join(tb.NORMS))
    p.add_argument("--seeds", default=",".join(map(str, tb.SEEDS)))
    p.add_argument("--root", default=None, help="run directories (default outputs/sn_settings_cnn)")
    p.add_argument("--data", default=None, help=f"the data file (default docs/results/{STUDY}.json)")
    p.add_argument("--results", default=None, help="the page of the tables (default docs/results.md)")
    p.add_argument("--out", default=None, help="copy the data, tables, samples here (a device $OUT)")
    p.add_argument("--commit", default=None, help="the commit to record (default: git's; a "
                   "device machine's copy of the tree has no .git)")
    p.add_argument("--bundle", metavar="DIR", default=None, help="only write the bundle")
    p.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = p.parse_args()
    if args.bundle:
        bundle(args.bundle)
        return 0
    import torch

    args.trainer = "gpu" if torch.cuda.is_available() and not args.dry_run else "cpu"
    if args.trainer == "cpu" and not args.dry_run:
        print("sn_settings_cnn: no CUDA GPU here; the 84 runs are for a GPU (--dry-run tries them "
              "on the CPU)")
        return 0
    if args.dry_run:
        args.steps = args.steps or 2
        args.overrides = [*DRY, *args.overrides]
    root = os.path.abspath(args.root or os.path.join(
        os.environ.get("SPECTRAL_GAN_OUTPUTS", os.path.join(REPO, "outputs")),
        f"{STUDY}_dry" if args.dry_run else STUDY))
    data_file = args.data or (os.path.join(root, f"{STUDY}.json") if args.dry_run else DATA)
    results_md = args.results or (os.path.join(root, "results.md") if args.dry_run else RESULTS_MD)
    started = time.monotonic()
    deadline = started + args.budget if args.budget else None

    from check_default import git_commit, publish

    saved = json.load(open(data_file)) if os.path.exists(data_file) else {}
    # finished: scored, or diverged (an outcome); a run that crashed runs again
    done = {key(r): r for r in saved.get("runs", []) if tb.scored(r) or r.get("diverged")}
    calls = saved.get("calls", [])
    call = {**environment(args.trainer), "commit": args.commit or git_commit(), "jobs": args.jobs,
            "budget_s": args.budget, "finished": 0, "wall_s": 0.0}
    calls.append(call)
    jobs = [j for j in plan(args.settings.split(","), args.norms.split(","),
                            [int(s) for s in args.seeds.split(",")]) if key(j) not in done]
    print(f"{len(done)} run(s) done before, {len(jobs)} to run, {args.jobs} at once, "
          f"on {call['device']}", flush=True)
    steps = args.steps or 1600
    lock, rendered = threading.Lock(), [""]

    def walls(n: int) -> list[float]:
        return [r["wall_s"] for r in done.values()
                if r.get("call") == len(calls) and r["n_dis"] == n and r["returncode"] == 0]

    def expected(job: dict) -> float:
        with lock:  # the runs' threads add to ``done`` under it
            measured = walls(job["n_dis"])
        return 1.1 * statistics.median(measured) if measured else PRIOR_S[job["n_dis"]]

    def save() -> None:
        call["wall_s"] = round(time.monotonic() - started, 1)
        call["mean_run_s"] = {str(n): round(statistics.fmean(walls(n)), 1) if walls(n) else None
                              for n in (1, 5)}
        rendered[0] = publish(study(list(done.values()), calls, steps, call["commit"]),
                              results_md, data_file, HEADING)
        if args.out:
            write_out(args.out, data_file, rendered[0], root)

    def run(job: dict) -> None:
        result = train(job, root, args, deadline)
        if result is not None:
            with lock:
                result["call"] = len(calls)
                done[key(job)] = result
                call["finished"] += 1
                save()

    os.makedirs(root, exist_ok=True)
    left = schedule(jobs, args.jobs, deadline, run, expected)
    save()
    failed = [r for r in done.values() if not (tb.scored(r) or r.get("diverged"))]
    missing = len(plan(args.settings.split(","), args.norms.split(","),
                       [int(s) for s in args.seeds.split(",")])) - len(done) + len(failed)
    print(f"\n{call['finished']} run(s) this call in {call['wall_s'] / 60:.1f} min; "
          f"{len(left)} not started (budget), {len(failed)} failed, {missing} still to run. "
          f"Data: {data_file}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
