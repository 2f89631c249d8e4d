"""The package's layering, checked from the imports themselves (issue #18)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spectral_gan"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# cli modules that are not commands: what the commands share, and train's Hydra callback
COMMAND_HELPERS = {"spectral_gan.cli.common", "spectral_gan.cli.sweep_status"}


def _console_scripts() -> dict[str, str]:
    """pyproject.toml's [project.scripts]: name -> 'module:function'."""
    import tomllib

    with open(PACKAGE.parent / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def test_no_command_imports_another():
    entry = {v.split(":")[0] for v in _console_scripts().values()}
    commands = [p for p in (PACKAGE / "cli").glob("*.py") if f"spectral_gan.cli.{p.stem}" in entry]
    assert len(commands) == len(entry), entry  # every console script is a module of cli/
    for path in commands:
        others = {m for m in imported_modules(path)
                  if m.startswith("spectral_gan.cli") and m not in COMMAND_HELPERS}
        assert not others, f"{path.name} imports the command(s) {others}"


def test_the_library_does_not_import_the_commands_or_the_lightning_module():
    below = [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts]
    assert len(below) > 30
    for path in below:
        modules = imported_modules(path)
        assert not any(m.startswith("spectral_gan.cli") for m in modules), path
        if path.name not in ("run.py", "gan.py"):  # training/run.py builds the module
            assert "spectral_gan.training.gan" not in modules, f"{path} imports the LightningModule"
    for sub in ("norms", "metrics", "data", "models"):
        for path in (PACKAGE / sub).rglob("*.py"):
            modules = imported_modules(path)
            assert not any("lightning" in m and sub != "data" for m in modules), \
                f"{path} knows Lightning"


def test_console_scripts_point_into_the_cli_package():
    import tomllib

    scripts = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {f"spectral-gan-{c}" for c in ("train", "sample", "eval", "fid", "compare")}
    assert all(target.startswith("spectral_gan.cli.") and target.endswith(":main")
               for target in scripts.values())


def test_pyproject_lists_every_package_and_maps_the_configs_into_the_wheel():
    import tomllib

    setuptools = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.relative_to(PACKAGE.parent).parts) for p in [PACKAGE, *PACKAGE.rglob("*")]
             if p.is_dir() and (p / "__init__.py").exists()}
    assert set(setuptools["packages"]) == found | {"spectral_gan.configs"}, \
        "a package under spectral_gan/ is missing from [tool.setuptools] packages"
    assert setuptools["package-dir"] == {"spectral_gan.configs": "configs"}


def test_no_private_lightning_attribute_is_touched():
    """``trainer._results``, ``trainer._signal_connector``, ...: Lightning's internals change
    between versions; the package uses its public API only (issue 33)."""
    touched = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name in ("trainer", "strategy", "fit_loop", "launcher", "accelerator"):
                    touched.append(f"{path.name}: {name}.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" \
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                    and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__"):
                owner = node.args[0]
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name in ("trainer", "strategy", "fit_loop", "launcher"):
                    touched.append(f"{path.name}: getattr({name}, {node.args[1].value!r})")
    assert not touched, touched


def _lightning_private_names() -> set[str]:
    """The private names of the Lightning classes the package subclasses or holds: class
    attributes and methods, and the attributes of a default instance."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import (Callback, EarlyStopping, ModelCheckpoint,
                                             TQDMProgressBar)
    from pytorch_lightning.plugins import TorchCheckpointIO

    instances = [ModelCheckpoint(dirpath="/nonexistent"), EarlyStopping(monitor="m"),
                 TQDMProgressBar(), pl.LightningModule(), Callback(), TorchCheckpointIO()]
    names = set()
    for obj in instances:
        names |= set(vars(obj)) | set(dir(type(obj)))
    torch_module = set(vars(torch.nn.Module())) | set(dir(torch.nn.Module))  # torch's, not Lightning's
    return {n for n in names - torch_module if n.startswith("_") and not n.startswith("__")}


def test_no_private_name_of_lightning_is_imported_or_inherited():
    """Subclasses of Lightning's callbacks and module use their public hooks and attributes only
    (``ModelCheckpoint.on_validation_end`` runs the stock top-k save; ``trainer.save_checkpoint``
    writes last.ckpt), and no private name is imported from Lightning (issue 33)."""
    private = _lightning_private_names()
    assert "_last_global_step_saved" in private and "_run_early_stopping_check" in private
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and "lightning" in node.module:
                found += [f"{path.name}: imports {a.name}" for a in node.names
                          if a.name.startswith("_")]
            if isinstance(node, ast.Attribute) and node.attr in private:
                owner = node.value
                if (isinstance(owner, ast.Name) and owner.id == "self") or isinstance(owner, ast.Call):
                    found.append(f"{path.name}: self.{node.attr}")
    assert not found, found


MAX_LINES = 330  # "no module over about 300 lines" (issue 33), with a tenth of slack


def test_no_module_is_over_about_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these by what they hold: {long}"


def test_development_tooling_stays_out_of_the_wheel():
    """devtools/ (the machine's description, the default check's digit scoring, the generated
    doc sections) serves scripts, benchmarks and tests; the package never imports it."""
    import tomllib

    packages = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert not [p for p in packages if not p.startswith("spectral_gan")]
    for path in PACKAGE.rglob("*.py"):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "devtools"}, path
    assert (PACKAGE.parent / "devtools" / "hardware.py").is_file()


def test_every_test_a_doc_cites_exists():
    """docs/*.md and the README cite tests as `tests/<file>.py::<test>`: each names a test that
    exists (tests move when they are regrouped by module; the citations must follow)."""
    import re

    root = PACKAGE.parent
    cited = []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        cited += [(doc.name, f, n) for f, n in
                  re.findall(r"`(tests/[\w/]+\.py)(?:::(test_\w+))?`", doc.read_text())]
    assert len(cited) > 20
    missing = []
    for doc, path, name in cited:
        file = root / path
        if not file.is_file() or (name and f"def {name}(" not in file.read_text()):
            missing.append(f"{doc}: {path}::{name}")
    assert not missing, missing
