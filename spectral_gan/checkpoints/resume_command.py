"""The command line of a resume: the run's own overrides, its directory, quoted paths.

``spectral-gan-train ckpt_path=<run dir>/checkpoints/<name>.ckpt`` alone resumes that run
(``resume_overrides``, applied to the command line before Hydra composes it):

- the config is the run's own: the overrides of its newest invocation (``.hydra/overrides.yaml``,
  or ``.hydra/resume_<n>/overrides.yaml`` of a later resume), with the command line's on top
  (``steps=60`` extends the run; a learning rate or a cadence may change too);
- Hydra's output directory is the run directory, so ``train.log`` and the events continue there;
  the original ``.hydra/`` is kept, and each resume writes its composed config to
  ``.hydra/resume_<n>/`` (1, 2, ...; ``overrides.yaml`` there is the full list it ran with);
- a ``ckpt_path`` value Hydra's grammar would reject unquoted (``gen_step=001000.ckpt`` of
  older runs, a sweep job's ``0_norm=sn`` folder) is quoted for it.

A run directory is data, not code: its saved overrides are applied only if they name no code
(``saved_override_code``: no ``_target_``, ``_partial_``, ``_args_``, ``_recursive_``,
``_convert_`` or ``module`` key, at any depth, and no resolver call ``${name:...}``), the rule
``spectral_gan.checkpoints.trust`` applies to a checkpoint's config. Otherwise the resume is refused
in one sentence, before Hydra composes anything; ``trust_checkpoint=true`` on the command line
is the explicit way to resume one's own run that used one's own code.

A checkpoint outside a ``checkpoints/`` folder (copied elsewhere) has no run to continue: the
command line alone is the config, and the comparison below still guards it.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any

import yaml


from spectral_gan.errors import ConfigError

# Hydra's flags that take a value (the value is not an override).
_VALUE_FLAGS = ("-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "--info",
                "--experimental-rerun", "-c", "--cfg", "-p", "--package")
_RESUME_DIR = re.compile(r"resume_(\d+)$")


def newest_last_checkpoint(run_dir: str) -> str | None:
    """The run's ``last.ckpt``; in run directories written before it was kept current, the most
    recently written of ``last.ckpt`` and Lightning's ``last-vN.ckpt``."""
    found = glob.glob(os.path.join(run_dir, "checkpoints", "last.ckpt"))
    found += glob.glob(os.path.join(run_dir, "checkpoints", "last-v*.ckpt"))
    return max(found, key=os.path.getmtime) if found else None


def hydra_quote(value: str) -> str:
    """``value`` as a single-quoted Hydra string (quotes and the backslashes before them escaped)."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def _parse(override: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([override])[0]


def quote_ckpt_path(override: str) -> str:
    """``ckpt_path=<value>`` with the value quoted when Hydra's grammar would reject it bare
    (``gen_step=001000.ckpt``, a folder named ``0_norm=sn,steps=20``); other overrides as given."""
    key, sep, value = override.partition("=")
    if not sep or key.lstrip("+") != "ckpt_path" or value[:1] in ("'", '"'):
        return override
    try:
        _parse(override)
        return override
    except Exception:  # noqa: BLE001  Hydra's grammar error: quote it
        return f"{key}={hydra_quote(value)}"


def _split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides)."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        if args[i].startswith("-"):
            flags.append(args[i])
            if args[i] in _VALUE_FLAGS and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(args[i])
        i += 1
    return flags, overrides


def _saved_overrides(run_dir: str) -> tuple[list[str] | None, int]:
    """The overrides of the run's newest invocation (None: no saved Hydra config), and the number
    of resumes so far."""
    hydra_dir = os.path.join(run_dir, ".hydra")
    resumes = sorted((int(m.group(1)) for m in (_RESUME_DIR.match(d) for d in
                      (os.listdir(hydra_dir) if os.path.isdir(hydra_dir) else [])) if m))
    for sub in [f"resume_{n}" for n in reversed(resumes)] + [""]:
        path = os.path.join(hydra_dir, sub, "overrides.yaml")
        if os.path.isfile(path):
            with open(path) as f:
                saved = yaml.safe_load(f) or []
            if isinstance(saved, list) and all(isinstance(o, str) for o in saved):
                return saved, (resumes[-1] if resumes else 0)
    return None, (resumes[-1] if resumes else 0)


# Config keys through which an override could make Hydra call or import something.
CODE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_", "module")
_RESOLVER_CALL = re.compile(r"\$\{[^}]*:")


def _code_in(value: Any) -> str | None:
    """The first place in an override's parsed value that names code, or None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k) in CODE_KEYS:
                return f"key {k}"
            found = _code_in(v)
            if found:
                return found
    elif isinstance(value, list):
        for v in value:
            found = _code_in(v)
            if found:
                return found
    elif isinstance(value, str) and _RESOLVER_CALL.search(value):
        return f"resolver call {value!r}"
    return None


def saved_override_code(override: str) -> str | None:
    """Why ``override`` (read from a run directory) could run code, or None when it cannot: a key
    whose last part is one of ``CODE_KEYS``, such a key inside its value, a resolver call, or an
    override Hydra cannot parse."""
    try:
        parsed = _parse(override)
    except Exception:  # noqa: BLE001  not written by Hydra
        return "it does not parse as an override"
    key = parsed.key_or_group.split("@")[0]
    if key.split(".")[-1] in CODE_KEYS:
        return f"it sets {key}"
    try:
        value = parsed.value()
    except Exception:  # noqa: BLE001  a sweep or other non-plain value: no run saves one
        return "its value is not a plain value"
    found = _code_in(value)
    return f"its value holds a {found}" if found else None


def _trusted(parsed: list) -> bool:
    for p in parsed:
        if p.key_or_group == "trust_checkpoint":
            value = p.value()
            if value not in (True, False):
                raise ConfigError(f"trust_checkpoint must be true or false, got {value!r}")
            return bool(value)
    return False


def _auto_output_subdir(parsed: list) -> list[str]:
    """``ckpt_path=auto`` into a named ``hydra.run.dir`` that holds a checkpoint: Hydra's config
    of this invocation goes to ``.hydra/resume_<n>/``, keeping the original ``.hydra/`` as a
    resume by file does (none when the directory holds no checkpoint: a fresh start)."""
    given = {p.key_or_group: p.value() for p in parsed}
    run_dir = given.get("hydra.run.dir")
    if not isinstance(run_dir, str) or "hydra.output_subdir" in given:
        return []
    if newest_last_checkpoint(run_dir) is None:
        return []
    _, resumes = _saved_overrides(run_dir)
    return [f"hydra.output_subdir={hydra_quote(f'.hydra/resume_{resumes + 1}')}"]


def resume_overrides(args: list[str]) -> list[str]:
    """The command line ``spectral-gan-train <args>`` runs: with ``ckpt_path=<file>`` in a run's
    ``checkpoints/`` folder, the run's own overrides first, then ``args``', and Hydra's output in
    the run directory (``.hydra/resume_<n>/``). Other command lines come back as given, but for
    a ``ckpt_path`` value that needs quoting."""
    flags, overrides = _split_args(list(args))
    overrides = [quote_ckpt_path(o) for o in overrides]
    if any(f in ("-m", "--multirun") for f in flags):
        return flags + overrides
    try:
        parsed = [_parse(o) for o in overrides]
    except Exception:  # noqa: BLE001  Hydra reports the grammar error itself
        return flags + overrides
    ckpt = [p.value() for p in parsed if p.key_or_group == "ckpt_path"]
    path = ckpt[-1] if ckpt else None
    if path == "auto":
        return flags + overrides + _auto_output_subdir(parsed)
    if not isinstance(path, str) or not os.path.isfile(path):
        return flags + overrides  # nothing to resume, auto, or a missing file (train says so)
    ckpt_dir = os.path.dirname(os.path.abspath(path))
    if os.path.basename(ckpt_dir) != "checkpoints":
        return flags + overrides
    run_dir = os.path.dirname(ckpt_dir)
    for p in parsed:
        if p.key_or_group == "hydra.run.dir" and os.path.abspath(str(p.value())) != run_dir:
            raise ConfigError(f"hydra.run.dir={p.value()} but a resume continues in the "
                              f"checkpoint's run directory {run_dir}: drop hydra.run.dir, or copy "
                              f"the checkpoint elsewhere to start a new run from it")
    saved, resumes = _saved_overrides(run_dir)
    given = {p.key_or_group for p in parsed}
    trusted = _trusted(parsed)
    base = []
    for o in saved or []:
        try:
            key = _parse(o).key_or_group
        except Exception:  # noqa: BLE001  not an override Hydra can read (an old unquoted
            continue       # ckpt_path): never applied
        if key in given or key == "ckpt_path" or key.startswith("hydra."):
            continue
        why = saved_override_code(o)
        if why and not trusted:
            raise ConfigError(
                f"refusing to resume from {run_dir}: its saved override {o!r} could run code "
                f"({why}); nothing was run; pass trust_checkpoint=true only for a run directory "
                f"you trust as you trust code, e.g. your own run with your own model or data")
        base.append(o)
    own = [o for o, p in zip(overrides, parsed) if p.key_or_group not in ("hydra.run.dir", "hydra.output_subdir")]
    return flags + base + own + [f"hydra.run.dir={hydra_quote(run_dir)}",
                                 f"hydra.output_subdir={hydra_quote(f'.hydra/resume_{resumes + 1}')}"]
