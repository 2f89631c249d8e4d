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
            labels = [r["label"] for r in table["rows"]]
            assert table["baseline"] in labels, path.name
            for row in table["rows"]:
                if isinstance(row.get("values"), list):
                    assert len(row["values"]) == len(study["seeds"]), (path.name, row["label"])
                    assert all(len(v) == len(study["metrics"]) for v in row["values"])


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
