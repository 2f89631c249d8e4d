"""Issue 36's limited-data study: `make study-limited-data` (STUDY_ARGS=... passes arguments).

    python scripts/limited_data_study.py                           # every run, two at a time
    python scripts/limited_data_study.py --sizes 500 --seeds 0-2    # one training-set size
    python scripts/limited_data_study.py --dry-run                  # each run for 2 steps, scored
    python scripts/limited_data_study.py --render                   # tables from what is done
    python scripts/limited_data_study.py --gamma-screen 0.01,0.05,0.2,1,5   # the r3gan gamma screen

Each method x training-set size x seed is `spectral-gan-train experiment=<E> data.train_size=<N>
seed=<S>` plus the study's settings (STUDY_SETTINGS: half the default's length, 800 generator
steps, the EMA from step 500, no evaluation or diagnostics during training, one thread per run),
in a process and run directory of its own under --root. Its final checkpoint's EMA generator is
then scored with the digit classifier: classifier FID, precision and recall (k=3) of 2,000 samples
against a fixed 2,000 of all 5,000 digits (whatever the training-set size), and class balance (the
rarest digit's share of the samples; 10% when balanced). Runs go in size order, so each size's
table completes before the next begins; a run already in <root>/results.json is not trained
again (the study continues where it stopped; with a fresh --root, the runs already in
docs/results/limited_data.json count as done). Sizes whose every method has every seed are written
as "seeds" tables (mean, std, per seed, each method's difference from SN with a Welch interval) to
docs/results/limited_data.json and docs/results.md.

The gamma screen (--gamma-screen) trains `r3gan` with each R1 + R2 weight on all 5,000 digits
and seed 3, a seed the study's tables do not use, at the study's settings; its table (one run per
gamma) is written beside the sizes' tables.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from check_default import (RESULTS_MD, data_path, parse_seeds, publish, run_jobs,  # noqa: E402
                           study_file, train_one)
from devtools import digit_quality as dq  # noqa: E402
from spectral_gan.checkpoints.evaluate import evaluate_checkpoint  # noqa: E402

STUDY = "limited_data"  # docs/results/limited_data.json; sections data:limited_data:size<N>
HEADING = "Limited data: normalizations, R3GAN, DiffAugment and LeCam on 500 to 5,000 digits"
# method -> (experiment, overrides). `r3gan` ran at gamma 0.05, the preset's before the gamma
# screen below picked GAMMA_PICK; `r3gan-screened` is the preset as it is now, run at 5,000 only.
GAMMA_PICK = "5"
METHODS = {
    "sn": ("mnist5k_sn", []),
    "none": ("mnist5k_sn", ["norm=none"]),
    "bsn": ("mnist5k_sn", ["norm=bsn"]),
    "gp": ("mnist5k_sn", ["norm=gp"]),
    "r3gan": ("mnist5k_r3gan", ["norm.penalty_weight=0.05"]),
    "sn+diffaugment": ("mnist5k_sn", ["augment=diffaugment"]),
    "sn+lecam": ("mnist5k_sn", ["lecam_weight=0.3"]),
    "r3gan-screened": ("mnist5k_r3gan", []),
}
SIZES = (500, 1000, 5000)
METHOD_SIZES = {"r3gan-screened": (5000,)}  # methods not run at every size
LABELS = {"r3gan": "`r3gan` (gamma 0.05)",
          "r3gan-screened": f"`r3gan` (gamma {GAMMA_PICK}, the screen's pick)"}
STUDY_SETTINGS = ["steps=800", "ema.start=500", "eval.classifier=false", "eval.inception=false",
                  "monitor.svd_every=0", "monitor.lipschitz_every=0", "monitor.layer_stats_every=0",
                  "sample_every=800", "checkpoint_every=800", "threads=1"]
EVAL = {"num_samples": 2000, "batch_size": 250, "classifier": True, "inception": False,
        "prdc": True, "cache_dir": None}
METRICS = {"fid_classifier": "classifier FID", "precision": "precision", "recall": "recall",
           "balance": "rarest digit"}
FORMATS = {"fid_classifier": "fid", "precision": "percent", "recall": "percent", "balance": "percent"}


def score(ckpt: str) -> dict:
    result = evaluate_checkpoint(ckpt, EVAL, seed=0, device=torch.device("cpu"),
                                 out=os.path.join(os.path.dirname(ckpt), "..", "eval_last.json"))
    m = result["metrics"]
    fractions = dq.evaluate_digits(ckpt).class_fractions
    return {"fid_classifier": m["fid_classifier"], "is_classifier": m["is_classifier"],
            "precision": m["precision_classifier"], "recall": m["recall_classifier"],
            "density": m["density_classifier"], "coverage": m["coverage_classifier"],
            "balance": min(fractions), "class_fractions": fractions,
            "gen_step": result["gen_step"], "weights": result["generator_weights"]}


def run_name(method: str, size: int, seed: int) -> str:
    return f"{method}, n={size}, seed {seed}"


GAMMA_SIZE, GAMMA_SEED = 5000, 3  # the gamma screen's training set and seed (not a table's)
GAMMA_PREFIX = "r3gan gamma="


def gamma_jobs(gammas: list[str], extra: list[str]) -> list[tuple]:
    return [(run_name(f"{GAMMA_PREFIX}{g}", GAMMA_SIZE, GAMMA_SEED), "r3gan-screened", GAMMA_SIZE,
             GAMMA_SEED, [f"norm.penalty_weight={g}", *extra]) for g in gammas]


def gamma_table(runs: dict[str, dict]) -> dict | None:
    """The gamma screen's runs, one row per gamma (lowest classifier FID in bold); None if none."""
    found = sorted(((float(name[len(GAMMA_PREFIX):].split(",")[0]), r) for name, r in runs.items()
                    if name.startswith(GAMMA_PREFIX) and "quality" in r), key=lambda x: x[0])
    if not found:
        return None
    best = min(r["quality"]["fid_classifier"] for _, r in found)
    rows = [[f"{g:g}", {"v": r["quality"]["fid_classifier"],
                        "bold": r["quality"]["fid_classifier"] == best},
             *[r["quality"][k] for k in ("precision", "recall", "balance")],
             f"{r['wall_s'] / 60:.1f} min"] for g, r in found]
    columns = [{"name": "gamma"}, {"name": "classifier FID", "format": "{:.1f}"},
               *[{"name": METRICS[k], "format": "{:.1%}"} for k in ("precision", "recall", "balance")],
               {"name": "wall time"}]
    return {"name": "r3gan_gamma", "kind": "table", "columns": columns, "rows": rows,
            "intro": f"**The gamma screen**: `r3gan` with `norm.penalty_weight=<gamma>` on all "
                     f"{GAMMA_SIZE:,} digits, seed {GAMMA_SEED} (no table above uses it), one run "
                     f"each; **bold**: the lowest classifier FID."}


def jobs_for(methods: list[str], sizes: list[int], seeds: list[int], extra: list[str]) -> list[tuple]:
    return [(run_name(m, n, s), m, n, s, extra) for n in sizes for m in methods for s in seeds
            if n in METHOD_SIZES.get(m, SIZES)]


def size_table(size: int, runs: dict[str, dict], seeds: list[int]) -> dict | None:
    """One training-set size as a "seeds" table, if every method has every seed scored."""
    rows = []
    for method in METHODS:
        if size not in METHOD_SIZES.get(method, SIZES):
            continue
        found = [runs.get(run_name(method, size, s)) for s in seeds]
        if not all(r and "quality" in r for r in found):
            return None
        rows.append({"label": LABELS.get(method, f"`{method}`"), "date": found[0].get("date"),
                     "values": [[r["quality"][k] for k in METRICS] for r in found]})
    return {"name": f"size{size}", "baseline": "`sn`", "plot": False, "seeds": seeds, "rows": rows,
            "intro": f"**{size:,} training digits** ({size // 10} of each), {len(seeds)} seeds."}


def render(root: str, seeds: list[int], results_md: str = RESULTS_MD) -> int:
    with open(os.path.join(root, "results.json")) as f:
        saved = json.load(f)
    runs = {r["name"]: r for r in saved["runs"]}
    tables = [t for t in [*(size_table(n, runs, seeds) for n in SIZES), gamma_table(runs)] if t]
    if not tables:
        print("no training-set size has every method on every seed yet", file=sys.stderr)
        return 1
    done = [r for r in saved["runs"] if "quality" in r]
    wall = sum(r["wall_s"] for r in done) / 60
    data = study_file(
        STUDY, "limited_data_study.py",
        f"Each method on mnist5k with data.train_size = 500, 1,000 and 5,000 digits, "
        f"{' '.join(STUDY_SETTINGS)} (800 steps: half the default's length, to fit the study "
        f"in about 4 CPU-hours), scored by the digit classifier on 2,000 EMA samples against 2,000 "
        f"of all 5,000 digits. {len(done)} runs, {wall:.0f} CPU-minutes of training and scoring "
        f"(one thread each, two at a time).",
        done, saved.get("date", datetime.date.today().isoformat()),
        saved.get("device", f"{os.cpu_count()} CPU cores"), root, tables,
        metrics=METRICS, formats=FORMATS, seeds=seeds)
    publish(data, results_md, data_path(results_md, STUDY), HEADING)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.join(REPO, "outputs", "limited_data"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="2 steps per run, not published")
    parser.add_argument("--render", action="store_true", help="only write the tables")
    parser.add_argument("--gamma-screen", default="", metavar="G1,G2,...",
                        help=f"train r3gan with these gammas (n={GAMMA_SIZE}, seed {GAMMA_SEED}) "
                             "instead of the study's runs")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    if args.render:
        return render(args.root, seeds)
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    extra = list(args.overrides) + (["steps=2", "ema.start=1"] if args.dry_run else [])
    saved_path = os.path.join(args.root, "results.json")
    saved = {"runs": [], "date": datetime.date.today().isoformat(),
             "device": f"{os.cpu_count()} CPU cores"}
    committed = data_path(RESULTS_MD, STUDY)
    if os.path.exists(saved_path) and not args.dry_run:
        with open(saved_path) as f:
            saved = json.load(f)
    elif os.path.exists(committed) and not args.dry_run:
        # a fresh root continues the committed study: its scored runs are not trained again and
        # stay in the tables written at the end
        with open(committed) as f:
            saved["runs"] = [r for r in json.load(f)["runs"] if "quality" in r]
    done = {r["name"] for r in saved["runs"] if "quality" in r}
    wanted = (gamma_jobs(args.gamma_screen.split(","), extra) if args.gamma_screen else
              jobs_for(methods, [int(n) for n in args.sizes.split(",")], seeds, extra))
    jobs = [j for j in wanted if j[0] not in done]
    os.makedirs(args.root, exist_ok=True)

    def train_job(job: tuple) -> dict:
        name, method, size, seed, overrides = job
        experiment, method_overrides = METHODS[method]
        run_dir = os.path.join(args.root, name.replace(", ", "_").replace(" ", "").replace("=", ""))
        shutil.rmtree(run_dir, ignore_errors=True)  # a run stopped part-way starts again
        result = train_one(name, [*method_overrides, f"data.train_size={size}", f"seed={seed}",
                                  *STUDY_SETTINGS, *overrides],
                           {}, run_dir, 1, experiment=experiment, score=score)
        result["date"] = datetime.date.today().isoformat()
        return result

    def on_done(name: str, result: dict) -> None:
        saved["runs"] = [r for r in saved["runs"] if r["name"] != name] + [result]
        with open(saved_path, "w") as f:
            json.dump(saved, f, indent=2)

    run_jobs(jobs, args.jobs, train_job, on_done)
    failed = [r["name"] for r in saved["runs"] if "quality" not in r]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if not args.dry_run:
        render(args.root, seeds)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
