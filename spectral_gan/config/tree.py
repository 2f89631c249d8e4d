"""The composed config as a tree, printed at the start of a run (``extras.print_config``).

With rich (installed with Lightning's progress bars) each top-level key is a branch with its
YAML; without it, plain YAML. Printed on rank 0 only.
"""
from __future__ import annotations

from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

# Shown first, in this order; the remaining keys follow in config order (hydra's own is left out).
FIRST = ("data", "generator", "discriminator", "norm", "loss", "optimizer", "trainer", "callbacks",
         "logger", "paths", "tags")


def _yaml(node: Any, resolve: bool) -> str:
    if OmegaConf.is_config(node):
        try:
            return OmegaConf.to_yaml(node, resolve=resolve)
        except Exception:  # noqa: BLE001  an interpolation that resolves only inside a run
            return OmegaConf.to_yaml(node, resolve=False)
    return f"{node}\n"


def _keys(cfg: DictConfig, order: Sequence[str]) -> list[str]:
    return [k for k in order if k in cfg] + [k for k in cfg if k not in order and k != "hydra"]


def _rich_tree(cfg: DictConfig, order: Sequence[str], resolve: bool):
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("CONFIG", style="dim", guide_style="dim")
    for key in _keys(cfg, order):
        tree.add(str(key), style="bold", guide_style="dim").add(Syntax(_yaml(cfg[key], resolve), "yaml"))
    return tree


def config_tree_text(cfg: DictConfig, order: Sequence[str] = FIRST, resolve: bool = True) -> str:
    """The tree as plain text: rich's rendering where rich is importable, else YAML per key."""
    try:
        from rich.console import Console
    except ImportError:
        return "".join(f"{k}:\n  " + _yaml(cfg[k], resolve).rstrip().replace("\n", "\n  ") + "\n"
                       for k in _keys(cfg, order))
    console = Console(width=120, no_color=True)
    with console.capture() as capture:
        console.print(_rich_tree(cfg, order, resolve))
    return capture.get()


@rank_zero_only
def print_config_tree(cfg: DictConfig, order: Sequence[str] = FIRST, resolve: bool = True) -> None:
    """Print the tree (in colour on a terminal)."""
    try:
        from rich.console import Console
    except ImportError:
        print(config_tree_text(cfg, order, resolve), flush=True)
        return
    Console().print(_rich_tree(cfg, order, resolve))
