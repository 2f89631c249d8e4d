"""spectral-gan-train: compose data, generator, discriminator (with its norm), loss, and train.

A thin Hydra entry point over ``spectral_gan.training.run.train``; everything it builds comes from
configs/ by ``_target_``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from spectral_gan.config import resolvers as config_resolvers
from spectral_gan.cli.sweep_status import LAST as SWEEP_END
from spectral_gan.cli.common import (exit_on_bad_command_line, CONFIG_DIR, compose_config, exit_if_plugin_missing,
                                     config_error_in, asks_for_help, report_config_error)
from spectral_gan.errors import ConfigError
from spectral_gan.checkpoints.resume_command import resume_overrides
from spectral_gan.runs.directory import holds_run, refuse_occupied_run_dir
from spectral_gan.runs.status import read_status, write_status
# Lightning, torch and the models are imported when a run starts (in _main), not for --help.


def compose_train_config(overrides: list[str], run_dir: str | None = None) -> DictConfig:
    """The config ``spectral-gan-train <overrides>`` would run (see ``compose_config``): a
    ``ckpt_path`` in a run's ``checkpoints/`` folder brings that run's overrides
    (``spectral_gan.checkpoints.resume.resume_overrides``)."""
    return compose_config("train", resume_overrides(list(overrides)), run_dir)


def _report(result: dict[str, Any], wall_s: float) -> None:
    if not result["trainer"].is_global_zero:
        return
    run_dir = result["run_dir"]
    if result.get("interrupted"):
        i = result["interrupted"]
        print(f"\nInterrupted by {i['signal']} after generator step {i['gen_step']}; saved "
              f"{i['checkpoint']}. Resume with: spectral-gan-train ckpt_path={i['checkpoint']}")
        return
    minutes, seconds = divmod(round(wall_s), 60)
    print(f"\nTrained {result['gen_step']} generator steps in {minutes} min {seconds:02d} s. "
          f"Run directory: {run_dir}")
    if os.path.exists(result["samples"]):
        print(f"  final samples: {result['samples']}")
    print(f"  checkpoint:    {result['checkpoint']}")
    print(f"  TensorBoard:   tensorboard --logdir {os.path.dirname(os.path.abspath(run_dir))}")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def _main(cfg: DictConfig) -> float | None:
    # Hydra restores its saved resolver table before the job runs (hydra.core.singleton), which
    # drops resolvers registered at import time in some launch paths: register again here.
    config_resolvers.register()
    from spectral_gan.config.tree import print_config_tree
    from spectral_gan.training.run import TrainingDiverged, train

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    run_dir = cfg.paths.run_dir
    if multirun and not cfg.get("ckpt_path"):  # a rerun of the same sweep: continue, don't redo
        previous = read_status(run_dir)
        if previous and previous["status"] in ("finished", "diverged"):
            print(f"{run_dir}: {previous['status']} in an earlier run of this sweep; skipped")
            return None
        if holds_run(run_dir):
            with open_dict(cfg):
                cfg.ckpt_path = "auto"
    if (cfg.get("extras") or {}).get("print_config"):
        print_config_tree(cfg)
    if not multirun:  # a sweep's jobs are announced by Hydra, with their overrides
        print(_announce(run_dir))
    started = time.monotonic()
    try:
        result = train(cfg)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        write_status(run_dir, "diverged", str(err))
        if multirun:  # the other jobs of the sweep go on; the comparison counts the divergence
            return None
        sys.exit(3)
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        reported = report_config_error(err)
        write_status(run_dir, "failed", str(config_error_in(err) or err) if reported
                     else f"{type(err).__name__}: {err}")
        if not reported and not multirun:
            raise
        if not reported:  # a crash in a sweep: its traceback kept, the other jobs go on
            trace = os.path.join(run_dir, "error.log")
            with contextlib.suppress(OSError):
                with open(trace, "w") as f:
                    f.write(traceback.format_exc())
            print(f"error: the job in {run_dir} crashed ({type(err).__name__}: {err}); its "
                  f"traceback is in {trace}; the other jobs go on", file=sys.stderr)
            return None
        if multirun:
            return None
        sys.exit(2)
    _report(result, time.monotonic() - started)
    if result.get("interrupted"):
        i = result["interrupted"]
        write_status(run_dir, "interrupted", f"{i['signal']} after generator step {i['gen_step']}")
        # The whole process stops (a sweep does not start its next job); 128 + signal number.
        sys.exit(128 + int(signal.Signals[i["signal"]]))
    write_status(run_dir, "finished")
    if cfg.get("optimized_metric"):  # what a hyperparameter sweeper (optuna) minimizes
        value = result["metrics"].get(cfg.optimized_metric)
        if value is None:
            raise ConfigError(f"optimized_metric={cfg.optimized_metric} was not logged; metrics of "
                              f"this run: {', '.join(sorted(result['metrics'])) or 'none'}")
        return value
    return None


def _announce(run_dir: str) -> str:
    """Two lines at the start of a run: what it trains (the experiment and the overrides given)
    and where it writes; the whole config is saved there rather than printed."""
    hydra_cfg = HydraConfig.get()
    experiment = hydra_cfg.runtime.choices.get("experiment") or "none"
    given = [o for o in hydra_cfg.overrides.task if not o.startswith(("experiment=", "~experiment"))]
    what = f"experiment={experiment}" + (f" with {' '.join(given)}" if given else "")
    return f"Training {what}\nRun directory: {run_dir} (config: .hydra/config.yaml there)"


def _norm_options_reach_the_method(args: list[str]) -> list[str]:
    """``norm.<option>=v`` as ``++norm.<option>=v``: set or added, so that an option the chosen
    method does not take reaches ``NormHook``, which refuses it in one sentence naming the
    method's options, instead of Hydra's struct error for a key no preset lists (a plugin's
    option under another method)."""
    import yaml

    with open(os.path.join(CONFIG_DIR, "norm", "none.yaml")) as f:
        listed = set(yaml.safe_load(f))  # every preset has these keys: left as the user wrote them
    out = []
    for a in args:
        key, sep, _ = a.partition("=")
        if (sep and key.startswith("norm.") and key.count(".") == 1 and key[5:] not in listed
                and not a.startswith(("+", "~"))):
            a = "++" + a
        out.append(a)
    return out


def _given(args: list[str], keys: tuple[str, ...]) -> dict[str, str]:
    """The values the command line gives ``keys`` (the last one wins), quotes stripped."""
    values = {}
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key in keys:
            values[key] = value.strip("'\"")
    return values


def _refuse_occupied(args: list[str]) -> None:
    """A single run into a ``hydra.run.dir`` that is locked or holds a run is refused before
    Hydra writes its ``.hydra/`` there (``spectral_gan.runs.directory``)."""
    if any(a in ("-m", "--multirun") for a in args):
        return
    values = _given(args, ("hydra.run.dir", "ckpt_path"))
    if "hydra.run.dir" in values:
        refuse_occupied_run_dir(values["hydra.run.dir"],
                                resuming=values.get("ckpt_path", "null") not in ("null", ""))


def _refuse_unwritable(args: list[str]) -> None:
    """The folder a run or sweep writes to must be creatable and writable: one sentence naming
    it, before Hydra's traceback from creating it (``hydra.run.dir``/``hydra.sweep.dir`` as given,
    else the output root: $SPECTRAL_GAN_OUTPUTS or ./outputs)."""
    if asks_for_help(args) or any(a in ("-c", "--cfg") for a in args):
        return  # nothing will be written
    given = _given(args, ("hydra.run.dir", "hydra.sweep.dir"))
    target = given.get("hydra.run.dir") or given.get("hydra.sweep.dir")
    if target is None:
        target = os.environ.get("SPECTRAL_GAN_OUTPUTS") or os.path.join(os.getcwd(), "outputs")
    if "${" in target:  # an interpolation (Hydra's default timestamped folder): its parent
        target = target.split("${", 1)[0] or os.getcwd()
    try:  # created now rather than by Hydra (it would be anyway), and written to once
        os.makedirs(target, exist_ok=True)
        probe = os.path.join(target, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise ConfigError(f"cannot write {target} ({err.strerror or err}); choose another place "
                          f"with hydra.run.dir=<dir> (one run), hydra.sweep.dir=<dir> (-m) or "
                          f"SPECTRAL_GAN_OUTPUTS=<dir>") from None


def _validate(cfg: DictConfig) -> None:
    from spectral_gan.training.validation import validate

    validate(cfg)


def main() -> None:
    # A resume (ckpt_path=<run>/checkpoints/...) runs with the run's own overrides, in its run
    # directory: the command line is completed before Hydra reads it (spectral_gan.checkpoints.resume).
    if asks_for_help(sys.argv[1:]):  # nothing to check or load: straight to Hydra's help
        _main()
        return
    try:
        sys.argv[1:] = _norm_options_reach_the_method(resume_overrides(sys.argv[1:]))
        _refuse_occupied(sys.argv[1:])
        _refuse_unwritable(sys.argv[1:])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    exit_if_plugin_missing("train")
    exit_on_bad_command_line("train", check=_validate)
    SWEEP_END.clear()
    _main()
    failed = SWEEP_END.get("failed")
    if failed:  # a multirun: the exit status is the number of failed jobs (at most 100)
        print(f"{len(failed)} of {SWEEP_END['total']} jobs failed (status.json in each): "
              f"{', '.join(os.path.basename(f) for f in failed)}", file=sys.stderr)
        sys.exit(min(len(failed), 100))


if __name__ == "__main__":
    main()
