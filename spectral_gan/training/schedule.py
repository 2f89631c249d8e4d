"""What a step is, and when things happen during training.

One spectral-gan step is ``n_dis`` discriminator updates followed by one generator update, and
everything counts these steps: ``steps=``, the cadences below, logging, sampling, evaluation,
checkpoint names and Lightning's own ``global_step`` (``spectral_gan.training.gan``: the
discriminator's optimizer steps are not counted), so no count is ever converted.
"""
from __future__ import annotations

from dataclasses import dataclass

from spectral_gan.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """Update ratio, batch size and cadences, all in generator steps (0: never, where allowed)."""

    n_dis: int = 1            # discriminator updates per generator update
    batch_size: int = 64      # per update, D and G alike
    log_every: int = 50       # scalars to the loggers
    sample_every: int = 500   # sample grid of the fixed noise
    eval_every: int = 0       # evaluation (FID, IS ...); 0: only at the end
    svd_every: int = 50       # sigma_eff/ and condition/ of D's layers (svdvals); 0: off
    lipschitz_every: int = 50  # lipschitz/* and sigma_op/ of D; 0: off
    layer_stats_every: int = 50  # grad_norm/{d,g}/<layer> and drift/<layer>; 0: off
    num_samples: int = 64     # images in the sample grid

    def __post_init__(self) -> None:
        for key in ("n_dis", "batch_size", "num_samples"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key} must be a positive integer, got {getattr(self, key)}")
        for key in ("log_every", "sample_every"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key} must be a positive number of generator steps, got "
                                  f"{getattr(self, key)}")
        for key in ("eval_every", "svd_every", "lipschitz_every", "layer_stats_every"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"{key} must be 0 (off) or a positive number of generator "
                                  f"steps, got {getattr(self, key)}")

    def due(self, every: int, step: int, last: int) -> bool:
        """Whether something done every ``every`` steps (and at the last one) is due."""
        return (every > 0 and step % every == 0) or step == last
