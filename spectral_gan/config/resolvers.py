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
    if not OmegaConf.has_resolver("fastest_precision"):  # ${fastest_precision:${trainer.accelerator}}
        OmegaConf.register_new_resolver("fastest_precision", fastest_precision, use_cache=True)
    if not OmegaConf.has_resolver("run_label"):  # ${run_label:${name}}: "<name>_<pid>" or "<pid>"
        OmegaConf.register_new_resolver("run_label", _run_label)


def _run_label(name) -> str:
    """The end of a run directory's name: the run's ``name=`` (made safe for a file name) and the
    process id, which keeps two runs started in the same second apart."""
    if name in (None, ""):
        return str(os.getpid())
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(name)).strip(".")
    return f"{safe}_{os.getpid()}"


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16), where oneDNN's
    bf16 convolutions run at about 0.64x the fp32 step time (docs/benchmarks.md)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fastest_precision(accelerator: str = "auto") -> str:
    """The default experiment's ``trainer.precision``: ``bf16-mixed`` when it trains on a CPU with
    native bf16, else ``32-true`` (GPUs: bf16 gives nothing at this size, docs/benchmarks.md). The
    power iteration, u, v and sigma stay fp32 under autocast (norms/power_iteration.py)."""
    on_cpu = accelerator == "cpu"
    if accelerator == "auto":
        import torch

        on_cpu = not torch.cuda.is_available()
    return "bf16-mixed" if on_cpu and cpu_has_native_bf16() else "32-true"


register()
