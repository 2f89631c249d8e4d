"""Errors that the entry points turn into one clear sentence and a non-zero exit."""


class ConfigError(ValueError):
    """A configuration that cannot work: the message says what was wrong and what to do."""


class DatasetNotFoundError(ConfigError):
    """A dataset whose files are not where the config says; the message names path and files."""


class RunEnvironmentError(ConfigError):
    """The machine, not the config: a folder that cannot be written, a full disk. The message
    names the path and what is left intact."""


def install_hint(extra: str) -> str:
    """How to install one of the package's extras (pyproject.toml), for missing-package errors."""
    return f"pip install 'spectral-gan[{extra}]' (in a source checkout: pip install '.[{extra}]')"
