"""OmegaConf resolvers used by configs/ (registered on import of ``spectral_gan``)."""
from __future__ import annotations

from omegaconf import OmegaConf


def optimizer_steps(generator_steps: int, n_dis: int) -> int:
    """Lightning's global_step per ``generator_steps``: each counts n_dis D steps plus one G step."""
    return int(generator_steps) * (int(n_dis) + 1)


def register() -> None:
    if not OmegaConf.has_resolver("optimizer_steps"):
        OmegaConf.register_new_resolver("optimizer_steps", optimizer_steps)


register()
