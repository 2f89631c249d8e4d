"""What the commands share: the config directory, composing a config, clean config-error exits,
a one-line hint when a Hydra plugin that a config needs is not installed."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from spectral_gan.errors import ConfigError, install_hint

if TYPE_CHECKING:
    import torch

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_config_dir() -> str:
    """The configs the commands compose: ``spectral_gan/configs`` in an installed wheel (the
    build maps the repository's top-level ``configs/`` there, see pyproject.toml), else
    ``configs/`` beside the package (a source checkout, on ``PYTHONPATH`` or installed editable)."""
    candidates = [os.path.join(_PACKAGE_DIR, "configs"),
                  os.path.join(os.path.dirname(_PACKAGE_DIR), "configs")]
    for path in candidates:
        if os.path.isfile(os.path.join(path, "train.yaml")):
            return path
    raise RuntimeError(f"spectral_gan's configs are missing (looked in {' and '.join(candidates)}); "
                       "reinstall the package")


CONFIG_DIR = find_config_dir()


def compose_config(config_name: str, overrides: list[str], run_dir: str | None = None) -> DictConfig:
    """The config a command would run with ``overrides``, composed without launching it (for
    tests, scripts and in-process benchmarks); ``run_dir`` stands in for Hydra's output dir."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    if run_dir is not None:
        with open_dict(cfg):
            cfg.paths.run_dir = run_dir
    return cfg


def config_error_in(err: BaseException | None) -> ConfigError | None:
    """The ConfigError behind ``err`` (hydra.utils.instantiate wraps what targets raise)."""
    while err is not None:
        if isinstance(err, ConfigError):
            return err
        err = err.__cause__ or err.__context__
    return None


def _bad_value_in(err: BaseException) -> str | None:
    """One sentence for a value a target could not take (Hydra's InstantiationException around a
    ValueError or TypeError raised while building a config node), else None."""
    from hydra.errors import InstantiationException

    if not isinstance(err, InstantiationException):
        return None
    inner = err.__cause__ or err.__context__
    if not isinstance(inner, (ValueError, TypeError)):
        return None
    text = str(err)
    node = text.rsplit("full_key:", 1)[1].strip().split()[0] if "full_key:" in text else "a node"
    return (f"cannot build {node} from its config ({type(inner).__name__}: "
            f"{str(inner).splitlines()[0] if str(inner) else 'bad value'}); check the values given "
            f"for {node}.* and the data.* it reads")


def report_config_error(err: BaseException) -> bool:
    """Print the ConfigError behind ``err`` as one line (or the value a config node could not
    take); False if there is none."""
    cause = config_error_in(err)
    message = str(cause) if cause is not None else _bad_value_in(err)
    if message is None:
        return False
    print(f"error: {message}", file=sys.stderr)
    return True


def or_exit_on_config_error(task: Callable[[], Any]) -> Any:
    """Run ``task``; a ConfigError behind whatever it raises becomes one line and exit status 2."""
    try:
        return task()
    except Exception as err:  # noqa: BLE001  unwrap Hydra's InstantiationException
        if not report_config_error(err):
            raise
        sys.exit(2)


def trust_flag(cfg: DictConfig) -> bool:
    """``trust_checkpoint``: whether a checkpoint's config may name code outside spectral_gan
    (``spectral_gan.checkpoints.trust``); only ``true`` or ``false``, so a typo never trusts."""
    value = cfg.get("trust_checkpoint", False)
    if not isinstance(value, bool):
        raise ConfigError(f"trust_checkpoint must be true or false, got {value!r}")
    return value


def pick_device(name: str) -> "torch.device":
    """``auto``: the GPU when there is one, else the CPU; otherwise the device named."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device={name!r} is not a device ({err}); use auto, cpu, cuda or cuda:N") from None


# Hydra plugins are optional extras (pyproject.toml): the config each registers, the module that
# registers it, the distribution and the extra that installs it.
PLUGINS = {
    "hydra/launcher/joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "sweeps"),
    "hydra/launcher/submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher",
                                      "slurm"),
    "hydra/launcher/submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher",
                                      "slurm"),
    "hydra/sweeper/optuna": ("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper", "optuna"),
}
_MISSING_CONFIG = re.compile(r"Could not (?:load|find) '([\w/-]+)'")


def plugin_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # hydra_plugins itself absent
        return False


def missing_plugin_hint(message: str) -> str | None:
    """One sentence naming the extra to install, if Hydra's error ``message`` is a config that a
    plugin registers (``Could not load 'hydra/launcher/joblib'``) and that plugin is missing."""
    match = _MISSING_CONFIG.search(message)
    if match is None or match.group(1) not in PLUGINS:
        return None
    module, dist, extra = PLUGINS[match.group(1)]
    if plugin_installed(module):
        return None
    return (f"the config {match.group(1)} comes from the Hydra plugin {dist}, which is not "
            f"installed: {install_hint(extra)}")


HELP_FLAGS = ("-h", "--help", "--hydra-help", "-i", "--info", "-sc", "--shell-completion")


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether the command line only asks Hydra for help (nothing is composed for a run; ``--cfg``
    is not among these: it shows the config a run would have, resume overrides included)."""
    return any(a in HELP_FLAGS for a in argv)


def hydra_args(argv: Sequence[str] | None = None):
    """The command line as Hydra's own parser reads it (flags, overrides); a malformed one raises
    ValueError instead of argparse printing and exiting (Hydra reports it itself later)."""
    from hydra._internal.utils import get_args_parser

    def refuse(message: str) -> None:
        raise ValueError(message)

    parser = get_args_parser()
    parser.error = refuse  # type: ignore[method-assign]
    return parser.parse_args(list(sys.argv[1:] if argv is None else argv))


def exit_if_plugin_missing(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Before Hydra starts: if a Hydra plugin is not installed and the command line's config needs
    it, say which extra to install in one line and exit with status 2 (Hydra itself would print
    a missing-config error and the search path). Costs nothing when every plugin is installed."""
    if all(plugin_installed(module) for module, _, _ in PLUGINS.values()):
        return
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = hydra_args(argv)
        if args.config_path or args.config_name or args.config_dir:
            return  # another config than ours: leave it to Hydra
        overrides = [o.input_line for o in OverridesParser.create().parse_overrides(args.overrides)
                     if not o.is_sweep_override()]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            compose(config_name=config_name, overrides=overrides)
    except Exception as err:  # noqa: BLE001  anything else is Hydra's to report as usual
        hint = missing_plugin_hint(str(err))
        if hint is not None:
            print(f"error: {hint}", file=sys.stderr)
            sys.exit(2)


def _sentence(err: BaseException, task: str) -> str:
    """Hydra's composition error (several lines, a hint to set HYDRA_FULL_ERROR) as one sentence."""
    import re

    chain, seen = [], err
    while seen is not None and len(chain) < 5:  # the message and its causes
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    text = "\n".join(chain).strip()
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    struct = re.search(r"Key '([^']+)' is not in struct", text)
    if struct:
        full = re.search(r"full_key: (\S+)", text)
        key = full.group(1) if full else struct.group(1)
        return (f"{key} is not a setting of spectral-gan-{task}; its settings: spectral-gan-{task} "
                f"--cfg job (to add a key on purpose: +{key}=...)")
    found = re.search(r"Could not find '([^']+)'", text)
    if found:
        options = []
        if any(line.startswith("Available options") for line in lines):
            start = next(i for i, line in enumerate(lines) if line.startswith("Available options"))
            for line in lines[start + 1:]:
                if line.startswith("Config search path") or ":" in line or " " in line:
                    break
                options.append(line)
        group, _, name = found.group(1).rpartition("/")
        listed = f"; valid options are: {', '.join(options)}" if options else ""
        return f"{group or 'config'}={name} does not exist{listed}"
    if "mismatched input" in text or "no viable alternative" in text or "extraneous input" in text:
        return (f"the command line does not parse ({lines[0]}); each override is key=value, "
                f"e.g. ckpt_path=<file>; quote values with spaces or commas")
    return lines[0] if lines else type(err).__name__


def exit_on_bad_command_line(task: str, argv: Sequence[str] | None = None,
                             check: Callable[[DictConfig], Any] | None = None) -> None:
    """Before Hydra starts: compose the command line's config once; an unknown key or group
    option, an override that does not parse, or a required value left unset (``???``) is one
    sentence and exit status 2, instead of Hydra's several lines and status 1; ``check`` (the
    task's own validation) runs on the composed config too, so that a bad value is refused before
    Hydra creates the run directory. Sweeps (``-m``) and other config sources are left to Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = hydra_args(argv)
    except ValueError:
        return  # Hydra's own flags in a form it reports itself
    if (args.multirun or args.config_path or args.config_name or args.config_dir or args.help
            or args.hydra_help or args.info or args.cfg or args.shell_completion):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except Exception as err:  # noqa: BLE001  the grammar's error
        print(f"error: {_sentence(err, task)}", file=sys.stderr)
        sys.exit(2)
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if sweeps:
        print(f"error: {sweeps[0]} is a sweep (several values): add -m (--multirun) to run one "
              f"job per value, or give one value", file=sys.stderr)
        sys.exit(2)
    try:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name=task, overrides=list(args.overrides))
    except Exception as err:  # noqa: BLE001  unknown key, group option, ...
        if missing_plugin_hint(str(err)) is not None:
            return  # exit_if_plugin_missing says which extra to install
        print(f"error: {_sentence(err, task)}", file=sys.stderr)
        sys.exit(2)
    finally:
        GlobalHydra.instance().clear()
    from spectral_gan.training.validation import check_missing

    try:
        check_missing(cfg)
        if check is not None:
            with warnings.catch_warnings():  # advice is given once, by the run itself
                warnings.simplefilter("ignore")
                check(cfg)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
