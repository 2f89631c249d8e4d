"""The documentation (issue 35): the site builds in MkDocs' strict mode (no broken link or
anchor), the README stays a landing page, and every command of the README's recipes runs as
printed, in order, shortened only by overrides appended to it."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent   # where the console scripts spectral-gan-* are installed
# The pages whose ```bash blocks are recipes, run in this order. docs/recipes.md includes the
# README's recipes section (pymdownx.snippets) rather than holding commands of its own.
RECIPE_PAGES = [README]

# Appended to each command, by console script, to make it cheap; the commands' own arguments
# (data, norms, experiments, folders, checkpoints) stay as printed. Training: 2 generator steps on
# batches of 16, no progress bar or config tree, one evaluation at the end on 100 samples, without
# Inception (about a minute per call on 2 CPU cores; tests/test_evaluation.py covers that path).
TRAIN = ["debug=quiet", "trainer.accelerator=cpu", "steps=2", "batch_size=16",
         "eval.num_samples=100", "eval.batch_size=50", "eval.inception=false"]
RESUME = ["steps=4"]   # after TRAIN for a command that resumes (ckpt_path=): past the saved step
SHORTEN = {
    "spectral-gan-train": TRAIN,
    "spectral-gan-eval": ["eval.num_samples=100", "eval.batch_size=50", "eval.inception=false"],
    "spectral-gan-sample": [],
    "spectral-gan-compare": [],
}
# Other programs of the recipes, each with why it is not run.
SKIP = {
    "make": "sets up .venv and runs training or the test suite (make test would recurse)",
    "tensorboard": "a server that runs until it is stopped",
    "pip": "installs packages; this test runs in an installed environment",
    "git": "changes the checkout",
    "cd": "the test runs every command in one temporary directory",
    "source": "activates the virtualenv this test already runs in",
}
SHELL = {"mkdir", "cat"}   # writing the files a recipe needs: run by bash as printed
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def bash_commands(markdown: str) -> list[str]:
    """The commands of the ```bash blocks, in order: comment lines dropped, backslash
    continuations joined, a heredoc kept with its body and end word."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, flags=re.M | re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            if not line or line.startswith("#"):
                continue
            while line.endswith("\\") and i < len(lines):
                line = line[:-1].rstrip() + " " + lines[i].strip()
                i += 1
            heredoc = re.search(r"<<-?\s*'?\"?(\w+)", line)
            if heredoc:
                end = lines.index(heredoc.group(1), i)
                line = "\n".join([line, *lines[i:end], heredoc.group(1)])
                i = end + 1
            commands.append(line)
    return commands


def split_command(command: str) -> tuple[dict[str, str], str, list[str]]:
    """(leading VAR=value assignments, program, arguments) of a one-line command."""
    words = shlex.split(command, comments=True)
    env = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words[0], words[1:]


def random_images(folder: Path, count: int = 32) -> None:
    """A folder of small random RGB PNGs, for a recipe that names its own image folder."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image_{i:03d}.png")


def prepare_inputs(args: list[str], cwd: Path) -> None:
    """Create the inputs a recipe expects the reader to have: `data=image_folder data.root=X`
    gets random images at X."""
    if "data=image_folder" in args:
        root = next(a.split("=", 1)[1] for a in args if a.startswith("data.root="))
        if not (cwd / root).exists():
            random_images(cwd / root)


def test_the_docs_site_builds_in_strict_mode(tmp_path):
    """mkdocs.yml: strict, with every link and anchor validated: a broken link, a missing
    anchor or a link to a file outside docs/ fails the build. The study data (docs/results/*.json)
    are copied as they are, and docs/recipes.md includes the README's recipes."""
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "results" / "check_default.json").is_file()
    recipes = (site / "recipes" / "index.html").read_text()
    readme_headings = re.findall(r"^### (.+)$", README.read_text(), flags=re.M)
    assert readme_headings and all(h in recipes for h in readme_headings)


def test_the_readme_is_a_landing_page():
    """At most 250 lines, none over 100 characters but table rows; the commands are in ```bash
    blocks (the only fences the recipe test reads)."""
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    long = [n for n, line in enumerate(lines, 1) if len(line) > 100 and not line.startswith("|")]
    assert not long, f"README.md lines over 100 characters: {long}"
    assert not re.findall(r"^```(?:sh|shell|console|zsh)\s*$", text, flags=re.M), \
        "write commands in ```bash blocks, which tests/test_docs.py runs"


def headings_anchors(markdown: str) -> set[str]:
    """The anchors GitHub (and the site, mkdocs.yml's slugify) give the headings of a page."""
    from pymdownx.slugs import slugify

    slug = slugify(case="lower")
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return {slug(h.replace("`", ""), "-") for h in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M)}


def test_the_readmes_links_reach_a_file_and_anchor():
    """The README is not part of the site, so mkdocs does not check its links: each relative
    link (inline or a reference definition) names a file of the repository and, with #anchor, a
    heading of that page."""
    text = README.read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"^\[[^\]]+\]:\s*(\S+)", text,
                                                             flags=re.M)
    local = [t for t in targets if "://" not in t]
    assert len(local) > 10
    broken = []
    for target in local:
        path, _, anchor = target.partition("#")
        page = REPO / path if path else README
        if not page.exists() or (anchor and anchor not in headings_anchors(page.read_text())):
            broken.append(target)
    assert not broken, f"README.md links to missing files or anchors: {broken}"


def test_every_recipe_command_runs_as_printed(tmp_path):
    """Each `spectral-gan-*` command of the recipes runs in order in one directory (later ones
    use the folders earlier ones made) with the SHORTEN overrides appended, and exits 0; file
    set-up lines (SHELL) run in bash; SKIP says why the others do not run. A command of any
    other program fails the test until it is put in one of those sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRAL_GAN_")}
    env.update(PYTHONWARNINGS="ignore", MPLBACKEND="Agg")
    ran, skipped = [], []
    for page in RECIPE_PAGES:
        commands = bash_commands(page.read_text())
        assert commands, f"no ```bash commands in {page.name}"
        for command in commands:
            if command.split()[0] in SHELL:
                proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                      capture_output=True, text=True, timeout=60)
                assert proc.returncode == 0, f"{command}\n{proc.stderr}"
                continue
            assignments, program, args = split_command(command)
            if program in SKIP:
                skipped.append(program)
                continue
            assert program in SHORTEN, (
                f"{page.name}: `{command}` runs {program}, which this test neither runs nor "
                "skips: add it to SHORTEN (a spectral-gan-* command), SHELL or SKIP (with why)")
            script = BIN / program
            assert script.is_file(), f"{page.name}: {program} is not a console script ({script})"
            extra = SHORTEN[program]
            if program == "spectral-gan-train" and any(a.startswith("ckpt_path=") for a in args):
                extra = extra + RESUME
            prepare_inputs(args, tmp_path)
            proc = subprocess.run([str(script), *args, *extra], cwd=tmp_path,
                                  env={**env, **assignments}, capture_output=True, text=True,
                                  timeout=900)
            assert proc.returncode == 0, (
                f"{page.name}: `{command}` (with {' '.join(extra)}) exited {proc.returncode}:\n"
                + (proc.stdout + proc.stderr)[-3000:])
            ran.append(program)
    # the recipes cover the commands a reader needs; a parser that found none would pass vacuously
    assert {"spectral-gan-train", "spectral-gan-compare", "spectral-gan-sample",
            "spectral-gan-eval"} <= set(ran), ran
    assert "make" in skipped


def test_the_default_runs_wall_time_in_the_docs_is_the_checks():
    """What `make run` takes (issue 35, item 8) is stated from the default's check
    (docs/results/check_default.json), not copied by hand: the README and docs/index.md say
    "about N minutes" for the median seed run and "about M in fp32" for the fp32 variant."""
    import json
    import statistics

    study = json.loads((REPO / "docs" / "results" / "check_default.json").read_text())
    rows = next(t for t in study["tables"] if t["name"] == "runs")["rows"]
    seeds = [row[1] for row in rows if re.fullmatch(r"seed \d+", row[0])]
    fp32 = [row[1] for row in rows if row[0].endswith(", fp32")]
    assert len(seeds) >= 3 and len(fp32) == 1
    expected = f"about {round(statistics.median(seeds))} minutes"
    expected_fp32 = f"about {round(fp32[0])} in fp32"
    for page in (README, REPO / "docs" / "index.md"):
        text = " ".join(page.read_text().split())  # line breaks as spaces
        assert expected in text and expected_fp32 in text, page
