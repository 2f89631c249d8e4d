"""OmegaConf resolvers used by configs/ (registered on import of ``spectral_gan``)."""
from __future__ import annotations

import os

from omegaconf import OmegaConf


def register() -> None:
    if not OmegaConf.has_resolver("mul"):  # ${mul:100,${discriminator.pack}}: PacGAN's batch
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("pid"):  # run directory names: unique among concurrent runs
        OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)
    if not OmegaConf.has_resolver("tag_dict"):  # logger=mlflow: tags=[a,b] -> {a: "true", b: "true"}
        OmegaConf.register_new_resolver("tag_dict", lambda tags: {str(t): "true" for t in tags or []})
    if not OmegaConf.has_resolver("mlflow_artifacts"):  # local store: beside it; else the server's
        OmegaConf.register_new_resolver(
            "mlflow_artifacts",
            lambda root: None if os.environ.get("MLFLOW_TRACKING_URI") else f"{root}/mlartifacts")
    if not OmegaConf.has_resolver("run_label"):  # ${run_label:${name}}: "<name>_<pid>" or "<pid>"
        OmegaConf.register_new_resolver("run_label", _run_label)


def _run_label(name) -> str:
    """The end of a run directory's name: the run's ``name=`` (made safe for a file name) and the
    process id, which keeps two runs started in the same second apart."""
    if name in (None, ""):
        return str(os.getpid())
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name)).strip(".")
    return f"{safe}_{os.getpid()}"


register()
