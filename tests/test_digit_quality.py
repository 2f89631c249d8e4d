"""The digit-quality check behind `make check-default` and its script's pieces (issue #12)."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from spectral_gan.checkpoints.load import checkpoint_gen_step
from spectral_gan.metrics.classifier import class_fractions, heldout_split, load_classifier
from devtools import digit_quality as dq
from spectral_gan.training.run import train
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import check_default  # noqa: E402


def test_heldout_split_is_the_classifier_scripts_split():
    torch.manual_seed(0)  # scripts/train_classifier.py: manual_seed, then randperm
    order = torch.randperm(5000)
    held_out, rest = heldout_split(5000)
    assert torch.equal(held_out, order[:1000]) and torch.equal(rest, order[1000:])


def test_real_heldout_digits_score_high_and_spread_over_all_classes():
    assert dq.real_heldout_is() > 8.0  # ten nearly balanced, confidently classified classes
    from spectral_gan.data.embedded import MNIST5kDataModule
    images = MNIST5kDataModule().load()[heldout_split(5000)[0]]
    fractions = class_fractions(load_classifier("mnist5k"), images)
    assert fractions.sum().item() == pytest.approx(1.0)
    assert all(dq.CLASS_MIN <= f <= dq.CLASS_MAX for f in fractions.tolist())
    one_digit = images[:1].expand(50, -1, -1, -1)
    assert class_fractions(load_classifier("mnist5k"), one_digit).max().item() == 1.0


def test_a_checkpoint_is_scored_and_judged(cfg_factory, tmp_path):
    train(cfg_factory("data=mnist5k", "batch_size=8", "generator.ch=4", "discriminator.ch=4",
                      "steps=2", "eval.every=0"))
    q = dq.evaluate_digits(str(tmp_path / "checkpoints" / "last.ckpt"), n=300, batch_size=100)
    assert q.gen_step == 2 and q.n == 300 and q.weights == "generator"
    assert checkpoint_gen_step(str(tmp_path / "checkpoints" / "last.ckpt")) == 2
    # --rescore keeps a run's earlier score when its checkpoint is no longer the one scored
    results = {"runs": [{"name": "seed 0", "run_dir": str(tmp_path), "wall_s": 60.0,
                         "returncode": 0, "command": "c",
                         "quality": {**q.as_dict(), "gen_step": 1600, "is_classifier": 7.5}}],
               "real_heldout_is": 9.0}
    (tmp_path / "results.json").write_text(json.dumps(results))
    check_default.rescore(str(tmp_path), str(tmp_path / "results.md"))
    kept = json.loads((tmp_path / "results.json").read_text())["runs"][0]["quality"]
    assert kept["is_classifier"] == 7.5 and kept["gen_step"] == 1600
    assert sum(q.class_fractions) == pytest.approx(1.0, abs=1e-3)
    assert q.is_classifier >= 1.0 and q.fid_classifier > 0
    # Two steps of training are no digits: the verdict must say so.
    v = dq.verdict(q, median_fid=q.fid_classifier, real_is=dq.real_heldout_is())
    assert v["fid_ok"] and not v["passed"] and not v["is_target"]
    good = dq.DigitQuality(**{**q.as_dict(), "class_fractions": [0.1] * 10, "is_classifier": 7.0,
                              "diversity_ratio": 1.0})
    assert dq.verdict(good, median_fid=q.fid_classifier, real_is=9.0)["passed"]
    one_shape = dq.DigitQuality(**{**good.as_dict(), "diversity_ratio": 0.05})
    assert not dq.verdict(one_shape, median_fid=q.fid_classifier, real_is=9.0)["passed"]
    far = dq.DigitQuality(**{**good.as_dict(), "fid_classifier": 3.5 * q.fid_classifier})
    assert not dq.verdict(far, median_fid=q.fid_classifier, real_is=9.0)["fid_ok"]


def test_other_data_is_refused(cfg_factory, tmp_path):
    train(cfg_factory("data=digits", "batch_size=8", "generator.ch=4", "discriminator.ch=4",
                      "steps=1", "eval.every=0"))
    with pytest.raises(ValueError, match="needs data=mnist5k"):
        dq.evaluate_digits(str(tmp_path / "checkpoints" / "last.ckpt"), n=100)


QUALITY = {"checkpoint": "c", "gen_step": 1600, "weights": "ema", "n": 2000,
           "is_classifier": 7.0, "fid_classifier": 400.0, "class_fractions": [0.1] * 10,
           "diversity_ratio": 1.0, "collapsed": []}


def check_runs() -> list[dict]:
    return [{"name": "seed 0", "wall_s": 460.0, "returncode": 0,
             "command": "spectral-gan-train experiment=mnist5k_sn seed=0", "quality": QUALITY},
            {"name": "seed 1", "wall_s": 470.0, "returncode": 0,
             "command": "spectral-gan-train experiment=mnist5k_sn seed=1",
             "quality": {**QUALITY, "class_fractions": [0.5] + [0.5 / 9] * 9,
                         "fid_classifier": 410.0}},
            {"name": "seed 0, bf16", "wall_s": 300.0, "returncode": 1, "command": "c2"}]


def test_check_default_writes_its_study_and_renders_it_as_make_results_does(tmp_path):
    assert check_default.parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert check_default.run_dir_name("seed 0, bf16") == "seed0_bf16"
    # the committed page's data is docs/results/; a draft's (or another --results) goes beside it
    assert check_default.data_path(check_default.RESULTS_MD) == str(
        REPO / "docs" / "results" / "check_default.json")
    page = tmp_path / "results.md"
    data = check_default.data_path(str(page))
    assert data == str(tmp_path / "results.check_default.json")
    assert check_default.data_path(str(page), data="x.json") == "x.json"

    page.write_text("# Results\n\nintro\n\n<!-- data:check_default:runs:start -->\nold\n"
                    "<!-- data:check_default:runs:end -->\n\n## Later section\n")
    runs = check_runs()
    median = check_default.judge(runs, ["seed 0", "seed 1"], real_is=9.0)
    study = check_default.study(runs, median, 9.0, "2026-01-01", "CPU test", str(tmp_path),
                                ["A note on these runs."])
    check_default.publish(study, str(page), data)
    text = page.read_text()
    assert "old" not in text and "A note on these runs." in text
    # the seeds table had no markers yet: it joins the study's runs table, under its heading
    assert (text.index("<!-- data:check_default:runs:end -->")
            < text.index("<!-- data:check_default:seeds:start -->") < text.index("## Later section"))
    assert "## The default experiment over seeds" not in text
    assert "| `experiment=mnist5k_sn` | 2 | 7.00 ± 0.00 | 405.0 ± 7.1 |" in text
    saved = json.loads((tmp_path / "results.check_default.json").read_text())
    assert saved["runs"][1]["verdict"]["passed"] is False and saved["commands"]
    assert saved["tables"][1]["seeds"] == [0, 1]
    # `make results` (scripts/results.py) renders the same page from the data file
    script = check_default.results_script()
    assert script.apply(text, {f"data:check_default:{t['name']}": script.render_table(saved, t)
                               for t in saved["tables"]}) == text

    fresh = tmp_path / "fresh.md"  # a page without the markers: one new section holds both
    check_default.publish(study, str(fresh), str(tmp_path / "fresh.json"))
    text = fresh.read_text()
    assert text.count("## The default experiment over seeds") == 1
    assert check_default.MARK_START in text and "<!-- data:check_default:seeds:end -->" in text


def test_check_default_table_marks_failures():
    runs = check_runs()
    median = check_default.judge(runs, ["seed 0", "seed 1"], real_is=9.0)
    assert median == 405.0
    assert [r["verdict"]["passed"] for r in runs] == [True, False, False]
    text = check_default.results_script().render_plain(
        check_default.table(runs, median, 9.0, "2026-01-01"))
    assert "| seed 1 | 7.8 min | 7.00 | 0.78 | 410 | 5.6%-50.0% | **no** | yes | yes | **no** |" in text
    assert "failed (exit 1)" in text and "seed 0, bf16: `c2`" in text
    assert "FID at most 3x the median over the seeds (405, so <= 1215)" in text


def test_check_conditional_table_and_study(tmp_path):
    import check_conditional
    q = {"class_accuracy": 0.969, "is_classifier": 9.12, "fid_classifier": 26.4,
         "intra_fid_classifier": 74.2}
    runs = [{"name": "seed 0", "wall_s": 1404.0, "returncode": 0, "command": "c0", "quality": q},
            {"name": "seed 1", "wall_s": 582.0, "returncode": 0, "command": "c1",
             "quality": {**q, "class_accuracy": 0.94}},
            {"name": "seed 2", "wall_s": 60.0, "returncode": 1, "command": "c2"}]
    study = check_conditional.study(runs, "2026-01-01", "CPU test", str(tmp_path), ["A note."])
    page = tmp_path / "draft.md"
    data = check_default.data_path(str(page), check_conditional.STUDY)
    text = check_default.publish(study, str(page), data, check_conditional.HEADING)
    assert "| seed 0 | 23.4 min | 96.9% | 9.12 | 26.4 | 74.2 | yes |" in text
    assert "| seed 1 | 9.7 min | 94.0% | 9.12 | 26.4 | 74.2 | **no** |" in text
    assert "failed (exit 1)" in text and text.endswith("A note.")
    assert "<!-- data:check_conditional:runs:start -->" in page.read_text()
    assert json.loads((tmp_path / "draft.check_conditional.json").read_text())["runs"] == runs


def test_check_default_resumes_a_stopped_check(tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps({"runs": [
        {"name": "seed 0", "quality": {}}, {"name": "seed 5", "quality": {}},
        {"name": "seed 1", "returncode": 1}]}))  # failed: to be trained again
    jobs = [("seed 0", [], {}), ("seed 1", [], {}), ("seed 0, bf16", [], {})]
    seed_names = ["seed 0", "seed 1"]
    done = check_default.resume(jobs, seed_names, str(saved))
    assert sorted(done) == ["seed 0", "seed 5"]
    assert [job[0] for job in jobs if job[0] not in done] == ["seed 1", "seed 0, bf16"]
    assert "seed 5" in seed_names and jobs[-1][0] == "seed 5"  # kept in the table and the median
    assert check_default.parse_seeds("none") == []


def test_early_dynamics_reports_the_first_steps_of_each_seed(tmp_path):
    import early_dynamics
    row = early_dynamics.early_run(0, steps=10, log_every=5, run_dir=str(tmp_path / "s0"),
                                   overrides=["data=ring", "generator=mlp", "discriminator=mlp",
                                              "batch_size=32"])
    assert row["seed"] == 0 and len(row["loss_d"]) == 2
    assert abs(row["min_loss_d"] - min(row["loss_d"])) <= 5e-4  # rounded to 4 and 3 places
    assert 0 <= row["saturated_logs"] <= 2 and row["final_diversity"] is not None


def test_check_scripts_run_every_job_and_report_each_once():
    seen: list[str] = []
    check_default.run_jobs([("a", 1), ("b", 2), ("c", 3)], 2, lambda job: {"value": job[1]},
                           lambda name, result: seen.append(f"{name}={result['value']}"))
    assert sorted(seen) == ["a=1", "b=2", "c=3"]
