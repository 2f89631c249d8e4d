"""OmegaConf resolvers used by configs/ (registered on import of ``spectral_gan``)."""
from __future__ import annotations

from omegaconf import OmegaConf

from spectral_gan.schedule import optimizer_steps


def register() -> None:
    if not OmegaConf.has_resolver("optimizer_steps"):
        OmegaConf.register_new_resolver("optimizer_steps", optimizer_steps)


register()
