"""Name -> specification tables for the normalization facets, and how methods are found.

A weight normalization is a function ``fn(module, **options) -> nn.Module`` in the style of
``torch.nn.utils.parametrizations.spectral_norm``; a feature normalization is a factory
``fn(num_features, dims, **options) -> nn.Module`` placed after a hidden layer. Each method
registers itself with a decorator that also declares the facts the rest of the code asks about
(:class:`NormSpec`): whether it mixes the samples of a batch, whether it may normalize the
generator, which ``norm.*`` options it takes, and a hook to run after each discriminator update.
Nothing outside a method's own file names the method: the hook, the training step and the config
checks ask this registry.

Discovery, so that a new method is one Python file plus one YAML in ``configs/norm/``:

- a file inside ``spectral_gan/norms/`` is imported by :func:`discover` (``pkgutil``) the first
  time a name is looked up, so it needs no line in ``norms/__init__.py``;
- a file anywhere else is named in its YAML by ``module: <dotted.module.path>`` (a list is
  accepted); ``NormHook`` imports it (:func:`import_methods`) before looking the method up. The
  module must be importable: installed, or its folder on ``PYTHONPATH``.

Registering also tags what a method builds (``built.norm_spec``), so that questions about a built
model (``properties.mixes_batch``) are answered from the specs too.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from spectral_gan.errors import ConfigError

KINDS = ("weight", "feature")


@dataclass(frozen=True)
class PerUpdate:
    """Work a method needs after every discriminator update (OSN's adaptive gates).

    ``signals(model)`` names the training signals the model's layers need (empty: nothing to do;
    the training step computes only those it is asked for, e.g. ``logit_gap``, ``grad_norm``);
    ``update(model, signals)`` consumes them, on device and without a host sync.
    """

    signals: Callable[[nn.Module], set[str]]
    update: Callable[[nn.Module, Mapping[str, torch.Tensor]], None]


@dataclass(frozen=True)
class NormSpec:
    """One registered method and the facts it declares about itself.

    Attributes:
        name: its value of ``norm.weight`` / ``norm.feature``.
        kind: ``weight`` or ``feature``.
        fn: the function that applies it (weight) or builds it (feature).
        mixes_batch: whether what it builds uses batch statistics in training, so that one
            sample's output depends on the others (BatchNorm, MSN's centering); such a method
            refuses per-sample gradient penalties and a joint real+fake discriminator pass.
        generator_ok: whether ``g_norm=<name>`` may apply it to every generator weight layer.
        options: the ``norm.*`` options it takes, each a keyword parameter of ``fn``.
        per_update: its :class:`PerUpdate` hook, if any.
    """

    name: str
    kind: str
    fn: Callable[..., nn.Module]
    mixes_batch: bool = False
    generator_ok: bool = False
    options: tuple[str, ...] = ()
    per_update: PerUpdate | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        """Apply (build) the method and tag the result with this spec."""
        built = self.fn(*args, **kwargs)
        built.norm_spec = self  # a plain attribute: read by properties.mixes_batch
        return built

    def takes(self, parameter: str) -> bool:
        """Whether ``fn`` takes the keyword ``parameter`` (facts the hook passes per layer:
        ``output_layer``, ``center_site``, ``layer_name``, ``shared``)."""
        return parameter in inspect.signature(self.fn).parameters

    @property
    def takes_output_layer(self) -> bool:
        """Whether ``fn`` wants to know that a layer is D's logit layer (MSN skips centering it)."""
        return self.takes("output_layer")

    @property
    def takes_shared(self) -> bool:
        """Whether ``fn`` wants the hook's ``shared`` state: a dict that every layer one hook builds
        sees, for what the layers of one model share (e.g. one learned scale for all of them)."""
        return self.takes("shared")

    def defaults(self) -> dict[str, Any]:
        """The default value of each option, as ``fn`` declares it."""
        params = inspect.signature(self.fn).parameters
        return {k: params[k].default for k in self.options
                if k in params and params[k].default is not inspect.Parameter.empty}


WEIGHT_NORMS: dict[str, NormSpec] = {}
FEATURE_NORMS: dict[str, NormSpec] = {}
_TABLES = {"weight": WEIGHT_NORMS, "feature": FEATURE_NORMS}
_discovered: set[str] = set()  # packages already imported whole


def _register(kind: str, name: str, mixes_batch: bool, generator_ok: bool,
              options: Iterable[str], per_update: PerUpdate | None) -> Callable:
    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        missing = [o for o in options if o not in params and not takes_any]
        if missing:  # a declaration that cannot be honoured is a bug in the method's file
            raise TypeError(f"{kind} normalization {name!r} declares option(s) {missing} that "
                            f"{fn.__qualname__} does not take")
        table = _TABLES[kind]
        old = table.get(name)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__,
                                                                             fn.__qualname__):
            # A second method under one name would silently replace the first (e.g. a user's
            # file shadowing a built-in); a re-import of the same function may replace it.
            raise ConfigError(f"{kind} normalization {name!r} is registered twice: by "
                              f"{old.fn.__module__}.{old.fn.__qualname__} and by "
                              f"{fn.__module__}.{fn.__qualname__}; rename one")
        spec = NormSpec(name, kind, fn, bool(mixes_batch), bool(generator_ok), tuple(options),
                        per_update)
        table[name] = spec

        @functools.wraps(fn)
        def apply(*args: Any, **kwargs: Any) -> nn.Module:
            return spec(*args, **kwargs)

        apply.norm_spec = spec
        return apply

    return add


def register_weight_norm(name: str, *, mixes_batch: bool = False, generator_ok: bool = False,
                         options: Iterable[str] = (), per_update: PerUpdate | None = None
                         ) -> Callable:
    """Decorator: register ``fn(module, **options) -> nn.Module`` as ``norm.weight=<name>``.

    The decorated function keeps its signature and, called directly, tags what it returns.
    """
    return _register("weight", name, mixes_batch, generator_ok, options, per_update)


def register_feature_norm(name: str, *, mixes_batch: bool = False, options: Iterable[str] = (),
                          per_update: PerUpdate | None = None) -> Callable:
    """Decorator: register ``fn(num_features, dims, **options) -> nn.Module`` as
    ``norm.feature=<name>``. Feature normalizations never go in the generator."""
    return _register("feature", name, mixes_batch, False, options, per_update)


def discover(package: str = "spectral_gan.norms") -> None:
    """Import every module of ``package`` once, so each method file in it registers itself."""
    if package in _discovered:
        return
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    _discovered.add(package)


def import_methods(modules: str | Iterable[str] | None) -> None:
    """Import the modules a norm config names in ``module:`` (methods defined outside the package)."""
    if not modules:
        return
    for path in [modules] if isinstance(modules, str) else list(modules):
        try:
            importlib.import_module(str(path))
        except ModuleNotFoundError as err:
            if err.name is None or not str(path).startswith(err.name):
                raise  # the module exists but one of its own imports is missing
            raise ConfigError(f"norm.module={path!r} could not be imported ({err}); name a dotted "
                              f"module path importable here (installed, or its folder on "
                              f"PYTHONPATH)") from None


def all_specs() -> list[NormSpec]:
    """Every registered method, weight and feature, after discovery."""
    discover()
    return [*WEIGHT_NORMS.values(), *FEATURE_NORMS.values()]


def lookup(kind: str, name: str) -> NormSpec:
    """The spec of ``norm.<kind>=<name>``; an unknown name is refused with the valid ones."""
    discover()
    table = _TABLES[kind]
    if name not in table:
        raise ConfigError(
            f"unknown {kind} normalization {name!r}; valid options are: {', '.join(sorted(table))}"
        )
    return table[name]
