"""Check the default experiment over seeds and roundings: `make check-default`.

    python scripts/check_default.py                       # seeds 0-9 + three roundings of seed 0
    python scripts/check_default.py --seeds 0,1 --variants none --jobs 2
    python scripts/check_default.py --seeds 3 -- steps=800   # extra overrides after --
    python scripts/check_default.py --root outputs/check_default/<date_time>  # resume a stopped check

Each run is `spectral-gan-train experiment=mnist5k_sn seed=S` in a process and run directory of
its own (so runs may go in parallel with --jobs), timed; then its final checkpoint is scored by
the digit classifier (devtools/digit_quality.py: classifier IS and FID of 2,000 EMA
samples, the fraction of samples per digit, collapse checks). The check's data (a table of the
runs: wall time, IS, FID, class balance, pass/fail; IS and FID over the seeds; every run's raw
numbers) go to docs/results/check_default.json, rendered into docs/results.md as `make results`
does (scripts/results.py); with --results another page, beside it (<page>.check_default.json) or
to --data, so a check of other settings leaves the committed default's data alone. The raw
numbers also go to <root>/results.json (for --render, --rescore and resuming). Exit status 1
when any run fails the required criteria.

Variants of seed 0 (other roundings of the same experiment, issue #12):
  threads1   OMP_NUM_THREADS=1
  fp32       trainer.precision=32-true (the default is bf16-mixed on CPUs with native bf16)
  nocl       speed.channels_last=false
"""
from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
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

from spectral_gan.checkpoints.load import checkpoint_gen_step  # noqa: E402
from devtools.hardware import describe  # noqa: E402
from devtools import digit_quality as dq  # noqa: E402
from devtools.doc_sections import markers, write_marked_sections  # noqa: E402

EXPERIMENT = "mnist5k_sn"
STUDY = "check_default"  # docs/results/check_default.json, sections data:check_default:<table>
HEADING = "The default experiment over seeds"
RESULTS_MD = os.path.join(REPO, "docs", "results.md")
VARIANTS = {  # name: (overrides, environment)
    "threads1": ([], {"OMP_NUM_THREADS": "1"}),
    "fp32": (["trainer.precision=32-true"], {}),
    "nocl": (["speed.channels_last=false"], {}),
}
MARK_START, MARK_END = markers(f"data:{STUDY}:runs")


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


def verdict_cell(ok: bool) -> str | dict:
    """A pass/fail cell of a table: yes, or a bold no."""
    return "yes" if ok else {"v": "no", "bold": True}


COLUMNS = [{"name": "run"}, {"name": "wall time", "format": "{:.1f} min"},
           {"name": "classifier IS", "format": "{:.2f}"}, {"name": "IS / real", "format": "{:.2f}"},
           {"name": "classifier FID", "format": "{:.0f}"},
           {"name": "classes min-max", "format": "{:.1%}-{:.1%}"}, {"name": "balanced"},
           {"name": "FID ok"}, {"name": "IS target"}, {"name": "pass"}]


def table(results: list[dict], median: float, real_is: float, when: str,
          device: str | None = None) -> dict:
    """The table of the runs (a ``"kind": "table"`` of scripts/results.py): each run's wall time,
    scores and verdicts."""
    where = device or f"{os.cpu_count()} CPU cores"  # checks saved before the device was recorded
    intro = (
        f"Measured {when} by `make check-default` on {where}: each run is "
        f"`spectral-gan-train experiment={EXPERIMENT}` with the override named, scored on 2,000 "
        f"EMA samples by the digit classifier. Real held-out digits score classifier IS "
        f"{real_is:.2f}, so the IS target (0.7x) is {dq.IS_TARGET * real_is:.2f}. Required: every "
        f"class {dq.CLASS_MIN:.0%}-{dq.CLASS_MAX:.0%} of the predictions, FID at most "
        f"{dq.FID_FACTOR:g}x the median over the seeds ({median:.0f}, so <= "
        f"{dq.FID_FACTOR * median:.0f}), no collapse.")
    rows = []
    for r in results:
        v = r["verdict"]
        if "quality" not in r:
            rows.append([r["name"], r["wall_s"] / 60, f"failed (exit {r['returncode']})",
                         None, None, None, None, None, None, verdict_cell(False)])
            continue
        q = r["quality"]
        fr = q["class_fractions"]
        rows.append([r["name"], r["wall_s"] / 60, q["is_classifier"], v["is_ratio"],
                     q["fid_classifier"], [min(fr), max(fr)],
                     *(verdict_cell(v[k]) for k in ("balanced", "fid_ok", "is_target", "passed"))])
    variants = [f"{r['name']}: `{r['command']}`" for r in results if "," in r["name"]]
    seeds = [r for r in results if "," not in r["name"]]
    setting = setting_of(seeds[0]).strip("`") if seeds else f"experiment={EXPERIMENT}"
    outro = (f"Commands: seed S: `spectral-gan-train {setting} seed=S`"
             + "".join(f"; {v}" for v in variants) + ".")
    return {"name": "runs", "kind": "table", "intro": intro, "columns": COLUMNS, "rows": rows,
            "outro": outro}


def setting_of(run: dict) -> str:
    """A seed run's command without the program and the seed: what the seeds share."""
    words = [w for w in run["command"].split() if w != "spectral-gan-train"
             and not w.startswith("seed=")]
    return "`" + " ".join(words) + "`"


def seeds_table(results: list[dict]) -> dict | None:
    """Classifier IS and FID over the scored seed runs (the roundings left out): mean ± std and
    the per-seed values (a ``"kind": "seeds"`` table of one row); None without a scored seed."""
    scored = [r for r in results if "," not in r["name"] and "quality" in r]
    if not scored:
        return None
    label = setting_of(scored[0])
    # "count": one decimal for the mean, a whole per-seed value without ".0"
    return {"name": "seeds", "baseline": label,
            "seeds": [int(r["name"].split()[-1]) for r in scored],
            "metrics": {"is": "classifier IS", "fid": "classifier FID"},
            "formats": {"is": "score", "fid": "count"},
            "intro": "The seeds of the table above, without the other roundings of seed 0:",
            "rows": [{"label": label, "values": [[r["quality"]["is_classifier"],
                                                  r["quality"]["fid_classifier"]]
                                                 for r in scored]}]}


def shown_path(path: str) -> str:
    """``path`` relative to the repository when inside it (outputs/...), else absolute."""
    path = os.path.abspath(path)
    return os.path.relpath(path, REPO) if path.startswith(REPO + os.sep) else path


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def study_file(name: str, script: str, description: str, results: list[dict], when: str,
               device: str, root: str, tables: list[dict], **extra) -> dict:
    """A check's study of docs/results/: its tables, where and when it ran, every run's raw
    numbers under "runs" (shared by check_default.py and check_conditional.py)."""
    return {
        "study": name, "description": description,
        "commands": [r["command"] for r in results],
        "provenance": f"Written by scripts/{script} on {datetime.date.today().isoformat()} from "
                      f"the runs under {shown_path(root)} (their results.json).",
        "commit": git_commit(), "device": device, "date": when, "tables": tables,
        **extra, "runs": results,
    }


def study(results: list[dict], median: float, real_is: float, when: str, device: str | None,
          root: str, notes: list[str] = ()) -> dict:
    """The check as a study of docs/results/ (scripts/results.py): the table of the runs (with
    ``notes`` after it), IS and FID over the seeds, and every run's raw numbers under "runs"."""
    runs = table(results, median, real_is, when, device)
    runs["outro"] = "\n\n".join([runs["outro"], *notes])
    seeds = seeds_table(results)
    return study_file(
        STUDY, "check_default.py",
        f"`make check-default`: experiment={EXPERIMENT} on seeds and other roundings of seed 0, "
        f"each final checkpoint scored by the digit classifier (2,000 EMA samples).",
        results, when, device or f"{os.cpu_count()} CPU cores", root,
        [runs] + ([seeds] if seeds else []), real_heldout_is=real_is, median_fid=median)


@functools.lru_cache(maxsize=1)
def results_script():
    """scripts/results.py, the renderer of every study (`make results`), loaded by its path."""
    path = os.path.join(REPO, "scripts", "results.py")
    spec = importlib.util.spec_from_file_location("results_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data_path(results_md: str, name: str = STUDY, data: str | None = None) -> str:
    """Where a check's study goes: ``data`` when given; docs/results/<name>.json for the committed
    page; else beside the page written (a draft, a check of other settings), so that such a check
    leaves the committed data alone."""
    if data:
        return data
    if os.path.abspath(results_md) == RESULTS_MD:
        return os.path.join(REPO, "docs", "results", f"{name}.json")
    return os.path.splitext(results_md)[0] + f".{name}.json"


def publish(data: dict, results_md: str, data_file: str, heading: str = HEADING) -> str:
    """Write a check's study to ``data_file`` and its tables, rendered as `make results` renders
    them, between their markers in ``results_md``; the rendered text is returned."""
    os.makedirs(os.path.dirname(os.path.abspath(data_file)), exist_ok=True)
    with open(data_file, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    render_table = results_script().render_table
    bodies = {f"data:{data['study']}:{t['name']}": render_table(data, t) for t in data["tables"]}
    write_marked_sections(results_md, bodies, heading)
    return "\n\n".join(bodies.values())


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


def render(results_json: str, results_md: str, data: str | None = None) -> int:
    """Rewrite the check's study and tables from a finished check's results.json (with today's
    criteria)."""
    with open(results_json) as f:
        saved = json.load(f)
    runs, real_is = saved["runs"], saved["real_heldout_is"]
    median = judge(runs, [r["name"] for r in runs if "," not in r["name"]], real_is)
    notes = []
    if saved.get("rescored"):
        notes.append(f"The checkpoints of this check were scored again on {saved['rescored']} "
                     "(`python scripts/check_default.py --rescore <root>`), with the scoring code "
                     "of that day.")
    data_file = data_path(results_md, data=data)
    print(publish(study(runs, median, real_is, measured_on(results_json, saved),
                        saved.get("device"), os.path.dirname(os.path.abspath(results_json)), notes),
                  results_md, data_file))
    return 0 if all(r["verdict"]["passed"] for r in runs) else 1


def rescore(root: str, results_md: str, data: str | None = None) -> int:
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
    return render(path, results_md, data)


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
    parser.add_argument("--results", default=RESULTS_MD,
                        help="the page the tables go to (default docs/results.md)")
    parser.add_argument("--data", default=None,
                        help="where the check's study goes (default docs/results/"
                             "check_default.json for docs/results.md, else beside --results: "
                             "<page>.check_default.json)")
    parser.add_argument("--render", metavar="RESULTS_JSON", default=None,
                        help="train nothing: write the table of an earlier check's results.json")
    parser.add_argument("--rescore", metavar="ROOT", default=None,
                        help="train nothing: score every run's last.ckpt under an earlier check's "
                             "ROOT again (after a change of the scoring) and rewrite the table")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    if args.render:
        return render(args.render, args.results, args.data)
    if args.rescore:
        return rescore(args.rescore, args.results, args.data)
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

    data_file = data_path(args.results, data=args.data)

    def report() -> str:
        """Tables and data of the runs finished so far, in job order (rewritten after each run,
        so a long check that is stopped still leaves its table)."""
        results = [done[name] for name, _, _ in jobs if name in done]
        median = judge(results, seed_names, real_is)
        notes = ([f"(partial: {len(results)} of {len(jobs)} runs finished so far)"]
                 if len(results) < len(jobs) else [])
        with open(os.path.join(root, "results.json"), "w") as f:
            json.dump({"real_heldout_is": real_is, "median_fid": median, "device": device,
                       "when": when, "runs": results}, f, indent=2)
        return publish(study(results, median, real_is, when[:10], device, root, notes),
                       args.results, data_file)

    def finished(name: str, result: dict) -> None:
        done[name] = result
        report()

    os.makedirs(root, exist_ok=True)
    todo = [job for job in jobs if job[0] not in done]
    run_jobs(todo, args.jobs, lambda job: train_one(*job, os.path.join(root, run_dir_name(job[0])),
                                                    threads), finished)
    print(report())
    print(f"\nwrote {args.results}, {data_file} and {os.path.join(root, 'results.json')}")
    results = list(done.values())
    return 0 if all(r["verdict"]["passed"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
