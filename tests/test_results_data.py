"""docs/results.md's generated tables agree with the data in docs/results/ (`make results`)."""
from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO


def results_script():
    spec = importlib.util.spec_from_file_location("results_script", REPO / "scripts" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_are_the_rendered_data():
    script = results_script()
    text = (REPO / "docs" / "results.md").read_text()
    assert script.apply(text, script.sections()) == text, "run `make results` and commit"


def test_every_study_names_its_commands_and_provenance():
    for path in sorted((REPO / "docs" / "results").glob("*.json")):
        study = json.loads(path.read_text())
        assert study["commands"] and study["provenance"], path.name
        for table in study["tables"]:
            if table.get("kind") == "table":
                assert table["columns"] and table["rows"], (path.name, table["name"])
                continue
            labels = [r["label"] for r in table["rows"]]
            assert table["baseline"] in labels, path.name
            for row in table["rows"]:
                if isinstance(row.get("values"), list):
                    seeds = table.get("seeds", study.get("seeds"))
                    metrics = table.get("metrics", study.get("metrics"))
                    assert len(row["values"]) == len(seeds), (path.name, row["label"])
                    assert all(len(v) == len(metrics) for v in row["values"])


def test_rendering_states_the_noise_and_marks_a_real_difference():
    script = results_script()
    study = {"metrics": {"kl": "reverse KL"}, "formats": {"kl": "kl"}, "seeds": [1, 2, 3]}
    table = {"name": "t", "baseline": "base", "floor": {"modes": 8, "samples": 2500},
             "rows": [{"label": "base", "values": [[0.10], [0.11], [0.09]]},
                      {"label": "far", "values": [[0.50], [0.52], [0.48]]},
                      {"label": "near", "values": [[0.11], [0.09], [0.12]]}]}
    out = script.render_table(study, table)
    far = [line for line in out.splitlines() if line.startswith("| far")][-1]
    near = [line for line in out.splitlines() if line.startswith("| near")][-1]
    assert "**+0.400" in far and "**" not in near
    assert "0.0014" in out and "base: 0.100, 0.110, 0.090" in out
    with pytest.raises(SystemExit, match="no <!-- data:x:start -->"):
        script.apply("no markers here", {"data:x": "body"})


def test_a_plain_table_formats_its_cells_by_column_and_computes_nothing():
    script = results_script()
    table = {"name": "screen", "kind": "table", "intro": "One seed.",
             "columns": [{"name": "norm"}, {"name": "HQ", "format": "{:.1%}"},
                         {"name": "FID", "format": "{:,.0f} ± {:.0f}"}],
             "rows": [["sn", 0.106, [1150, 85]], ["gp", {"v": 0.5, "bold": True}, None]]}
    out = script.render_table({}, table)
    assert out.splitlines()[0] == "One seed."
    assert "| sn | 10.6% | 1,150 ± 85 |" in out and "| gp | **50.0%** |  |" in out
    with pytest.raises(SystemExit, match="2 cells for 3 columns"):
        script.render_table({}, {**table, "rows": [["sn", 0.1]]})


def test_reference_rows_stay_out_of_the_statistics():
    script = results_script()
    study = {"metrics": {"m": "modes"}, "formats": {"m": "count"}, "seeds": [1, 2]}
    table = {"name": "t", "baseline": "base",
             "rows": [{"label": "paper", "seeds": "10 trials", "cells": ["7.8"]},
                      {"label": "base", "values": [[8], [8]]}, {"label": "other", "values": [[6], [7]]}]}
    out = script.render_table(study, table)
    assert "| paper | 10 trials | 7.8 |" in out
    assert "paper:" not in out and out.count("| paper") == 1


def test_a_seeds_table_of_one_setting_gives_its_statistics_and_no_difference():
    script = results_script()
    study = {"metrics": {"is": "IS"}, "formats": {"is": "score"}, "seeds": [0, 1]}
    out = script.render_table(study, {"name": "t", "baseline": "only",
                                      "rows": [{"label": "only", "values": [[7.0], [7.2]]}]})
    assert "| only | 2 | 7.10 ± 0.14 |" in out and "only: 7.00, 7.20" in out
    assert "Difference from" not in out
