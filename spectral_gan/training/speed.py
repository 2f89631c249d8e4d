"""Speed switches for the generator and discriminator (``speed:`` in configs/train.yaml).

Each switch leaves the function the networks compute unchanged (up to floating-point rounding):

- ``channels_last``: NHWC memory format for 4-D activations and weights. oneDNN (CPU) and cuDNN
  with tensor cores (GPU) run convolutions faster in it (measured effects: docs/benchmarks.md).
- ``compile``: ``torch.compile`` of each network in place (``nn.Module.compile``: state_dict keys
  and checkpoints stay as they are). When compilation fails (no compiler, an unsupported op),
  torch falls back to eager execution for that frame and the run goes on with a warning.
- ``cudnn_benchmark``: cuDNN times its convolution algorithms on the first batch of each shape
  and keeps the fastest (shapes are fixed here). Lightning turns it off for
  ``trainer.deterministic=true``. No effect on the CPU.
- ``joint_d_pass`` (applied by the training step): real and fake through D as one batch of
  2x the size. The same losses and gradients (refused when D mixes the batch: BatchNorm, MSN);
  ``auto`` takes it on a GPU, where one larger batch uses the device better, and not on the CPU,
  where it measured no faster (docs/benchmarks.md).
- ``matmul_precision``: ``torch.set_float32_matmul_precision``; ``high`` lets fp32 matmuls use
  TF32 on Ampere and newer GPUs (convolutions already do by default), no effect on the CPU.

Mixed precision is the trainer's (``trainer.precision=bf16-mixed`` or ``16-mixed``); the power
iteration of every spectral normalization runs in fp32 under it (norms/power_iteration.py).
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.norms import mixes_batch

log = logging.getLogger(__name__)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
MATMUL_PRECISIONS = ("highest", "high", "medium")
JOINT_D_PASS = ("auto", True, False)
_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _to_channels_last(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and x.dim() == 4:
        return (channels_last(x), *args[1:])
    return None


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels_last, with channels_last strides even where the format is ambiguous.

    A one-channel image batch (MNIST) is laid out the same in both formats, so ``contiguous``
    keeps its NCHW strides, and oneDNN then writes the convolution's output in NCHW too: every
    later layer's input had to be copied back (a few percent of a step, docs/benchmarks.md).
    Restriding the same memory (a view, no copy) makes the choice explicit.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    if c == 1 and x.stride(1) != 1:
        x = x.as_strided(x.shape, (h * w, 1, w, 1))
    return x


def use_channels_last(model: nn.Module, weights: bool = False) -> bool:
    """Put a model's 4-D weights and every 2-D convolution's input in channels_last.

    Inputs are converted by a forward pre-hook on each convolution (a no-op once a tensor is in
    the format), so models need not know: a generator's first feature map comes from a
    ``view`` of a dense layer and real batches come from the loader in the default format.
    Returns whether the model has 2-D convolutions (otherwise nothing is changed).
    """
    convs = [m for m in model.modules() if isinstance(m, _CONVS)]
    if not convs:
        return False
    if weights:
        model.to(memory_format=torch.channels_last)
    for conv in convs:
        conv.register_forward_pre_hook(_to_channels_last)
    return True


def compile_model(model: nn.Module, mode: str = "default", backend: str = "inductor") -> nn.Module:
    """``torch.compile`` the model in place, falling back to eager where compilation fails."""
    # A failed compile (no C++ compiler, an op inductor lacks) then costs speed, not the run.
    torch._dynamo.config.suppress_errors = True
    model.compile(mode=None if mode == "default" else mode, backend=backend)
    return model


def check_joint_d_pass(value: Any) -> None:
    """Checked once, by ``spectral_gan.training.settings.GANSettings`` (the training loop owns it)."""
    if value not in JOINT_D_PASS:
        raise ConfigError(f"speed.joint_d_pass must be auto, true or false, got {value!r}")


def validate_speed(speed: Any) -> None:
    for key in ("channels_last", "compile", "channels_last_weights", "cudnn_benchmark"):
        if not isinstance(speed.get(key, False), bool):
            raise ConfigError(f"speed.{key} must be true or false, got {speed.get(key)!r}")
    if speed.get("compile_mode", "default") not in COMPILE_MODES:
        raise ConfigError(f"speed.compile_mode must be one of {', '.join(COMPILE_MODES)}, got "
                          f"{speed.get('compile_mode')!r}")
    if speed.get("matmul_precision", "highest") not in MATMUL_PRECISIONS:
        raise ConfigError(f"speed.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, "
                          f"got {speed.get('matmul_precision')!r}")


def apply_speed_options(generator: nn.Module, discriminator: nn.Module, speed: Any) -> dict[str, Any]:
    """Apply the ``speed:`` switches to both networks; returns what was applied (for the log)."""
    validate_speed(speed)
    applied: dict[str, Any] = {}
    torch.set_float32_matmul_precision(speed.get("matmul_precision", "highest"))
    applied["matmul_precision"] = torch.get_float32_matmul_precision()
    torch.backends.cudnn.benchmark = bool(speed.get("cudnn_benchmark", False))
    applied["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    if speed.get("channels_last", False):
        weights = speed.get("channels_last_weights", False)
        applied["channels_last"] = [use_channels_last(net, weights) for net in (generator, discriminator)]
    if speed.get("compile", False):
        for net in (generator, discriminator):
            compile_model(net, speed.get("compile_mode", "default"),
                          speed.get("compile_backend", "inductor"))
        applied["compile"] = speed.get("compile_mode", "default")
    log.debug("speed options: %s", applied)  # in the run's log with hydra.verbose=true
    return applied


def joint_d_pass_on(setting: str | bool, discriminator: nn.Module, device_type: str | None) -> bool:
    """Whether real and fake go through D as one batch (``speed.joint_d_pass``).

    ``True`` is refused for a discriminator that normalizes with batch statistics: real and fake
    would share them and D would compute another function. ``auto`` decides on the device
    (``device_type``; None before it is known: off): one D pass on cat(real, fake) measured
    slower on the CPU (docs/benchmarks.md), so auto = GPU only.
    """
    if setting is True:
        if mixes_batch(discriminator):
            raise ConfigError(
                "speed.joint_d_pass=true runs real and fake images through D as one batch, but this "
                "discriminator normalizes with batch statistics (BatchNorm or MSN), so real and "
                "fake would share them and D would compute another function; use "
                "speed.joint_d_pass=auto or false")
        return True
    return setting == "auto" and device_type == "cuda" and not mixes_batch(discriminator)
