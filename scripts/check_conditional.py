"""Check the class-conditional preset over seeds: `make check-conditional`.

    python scripts/check_conditional.py                    # seeds 0-2, one after the other
    python scripts/check_conditional.py --seeds 0-4 --jobs 2
    python scripts/check_conditional.py --seeds 3 -- steps=800   # extra overrides after --

Each run is `spectral-gan-train experiment=mnist5k_cond seed=S` in a process and run directory of
its own; its final checkpoint's EMA generator is then evaluated like `spectral-gan-eval` does
(2,000 samples, balanced labels: sample i asks for class i mod 10) with the digit classifier:
class accuracy (the fraction of samples assigned to the class they were asked for), classifier
IS and FID, and the intra-class classifier FID (each class's samples against that class's real
digits, averaged). Required (issue 17): class accuracy of at least 95% on every seed. The table
of the runs and their raw numbers go to docs/results/check_conditional.json, rendered into
docs/results.md as `make results` does (scripts/results.py); with --results another page, beside
it (<page>.check_conditional.json) or to --data. Raw numbers also go to <root>/results.json.
Exit status 1 when any run fails.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from check_default import (RESULTS_MD, data_path, device_of, parse_seeds, publish,  # noqa: E402
                           run_jobs, study_file, train_one, verdict_cell)
from spectral_gan.checkpoints.evaluate import evaluate_checkpoint  # noqa: E402

EXPERIMENT = "mnist5k_cond"
STUDY = "check_conditional"  # docs/results/check_conditional.json; data:check_conditional:runs
HEADING = "Class-conditional digits over seeds"
REQUIRED_ACCURACY = 0.95
EVAL = {"num_samples": 2000, "batch_size": 250, "classifier": True, "intra_fid": True,
        "cache_dir": None}


def score(ckpt: str) -> dict:
    result = evaluate_checkpoint(ckpt, EVAL, seed=0, device=torch.device("cpu"),
                                 out=os.path.join(os.path.dirname(ckpt), "..", "eval_last.json"))
    return {**result["metrics"], "gen_step": result["gen_step"],
            "weights": result["generator_weights"]}


COLUMNS = [{"name": "run"}, {"name": "wall time", "format": "{:.1f} min"},
           {"name": "class accuracy", "format": "{:.1%}"},
           {"name": "classifier IS", "format": "{:.2f}"},
           {"name": "classifier FID", "format": "{:.1f}"},
           {"name": "intra-class FID", "format": "{:.1f}"}, {"name": "pass"}]


def table(results: list[dict], when: str, device: str) -> dict:
    """The table of the runs (a ``"kind": "table"`` of scripts/results.py)."""
    intro = (
        f"Measured {when} by `make check-conditional` on {device}: each run is `spectral-gan-train "
        f"experiment={EXPERIMENT} seed=S`, scored on 2,000 EMA samples with balanced labels by "
        f"the digit classifier. Required: class accuracy (samples the classifier assigns to the "
        f"class they were asked for) of at least {REQUIRED_ACCURACY:.0%} on every seed.")
    rows = []
    for r in results:
        q = r.get("quality")
        if q is None:
            rows.append([r["name"], r["wall_s"] / 60, f"failed (exit {r['returncode']})",
                         None, None, None, verdict_cell(False)])
            continue
        rows.append([r["name"], r["wall_s"] / 60, q["class_accuracy"], q["is_classifier"],
                     q["fid_classifier"], q["intra_fid_classifier"],
                     verdict_cell(q["class_accuracy"] >= REQUIRED_ACCURACY)])
    return {"name": "runs", "kind": "table", "intro": intro, "columns": COLUMNS, "rows": rows}


def study(results: list[dict], when: str, device: str, root: str,
          notes: list[str] = ()) -> dict:
    """The check as a study of docs/results/: the table of the runs (``notes`` after it) and
    every run's raw numbers under "runs"."""
    runs = table(results, when, device)
    if notes:
        runs["outro"] = "\n\n".join(notes)
    return study_file(
        STUDY, "check_conditional.py",
        f"`make check-conditional`: experiment={EXPERIMENT} over seeds, each final checkpoint's "
        f"EMA generator scored by the digit classifier (2,000 samples, balanced labels).",
        results, when, device, root, [runs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-2", help="e.g. 0-2 or 0,3,5")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (threads split evenly)")
    parser.add_argument("--root", default=None, help="where runs go (default "
                        "outputs/check_conditional/<time>)")
    parser.add_argument("--results", default=RESULTS_MD,
                        help="the page the table goes to (default docs/results.md)")
    parser.add_argument("--data", default=None,
                        help="where the check's study goes (default docs/results/"
                             "check_conditional.json for docs/results.md, else beside --results: "
                             "<page>.check_conditional.json)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = parser.parse_args()
    when = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    root = args.root or os.path.join(REPO, "outputs", "check_conditional", when)
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    jobs = [(f"seed {s}", [f"seed={s}", *args.overrides]) for s in parse_seeds(args.seeds)]
    device = device_of(args.overrides)
    done: dict[str, dict] = {}
    data_file = data_path(args.results, STUDY, args.data)

    def report() -> str:
        results = [done[name] for name, _ in jobs if name in done]
        for r in results:
            q = r.get("quality")
            r["passed"] = bool(q and q["class_accuracy"] >= REQUIRED_ACCURACY)
        notes = ([f"(partial: {len(results)} of {len(jobs)} runs finished so far)"]
                 if len(results) < len(jobs) else [])
        with open(os.path.join(root, "results.json"), "w") as f:
            json.dump({"device": device, "runs": results}, f, indent=2)
        return publish(study(results, when[:10], device, root, notes), args.results, data_file,
                       HEADING)

    def train_job(job: tuple[str, list[str]]) -> dict:
        name, overrides = job
        return train_one(name, overrides, {}, os.path.join(root, name.replace(" ", "")), threads,
                         experiment=EXPERIMENT, score=score)

    def finished(name: str, result: dict) -> None:
        done[name] = result
        report()

    os.makedirs(root, exist_ok=True)
    run_jobs(jobs, args.jobs, train_job, finished)
    print(report())
    print(f"\nwrote {args.results}, {data_file} and {os.path.join(root, 'results.json')}")
    return 0 if all(r["passed"] for r in done.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
