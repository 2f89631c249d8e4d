"""The GAN training step as a LightningModule (manual optimization).

One ``training_step`` is one generator update, preceded by ``n_dis`` discriminator updates; the
loader batch holds the ``n_dis`` real batches. Lightning's ``global_step`` counts optimizer steps,
so it advances by ``n_dis + 1`` per training step: ``gen_step`` is what this framework calls a
step (``steps=``, logging, checkpoint names).

Power-iteration cadence: each discriminator update evaluates D's normalized weights once inside
``parametrize.cached()`` (one iteration, however many D forwards), and the generator update runs
with the iteration paused.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any, Callable, Iterable

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils import parametrize
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.utils import save_image

from spectral_gan.losses import AdversarialLoss
from spectral_gan.norms import power_iteration_paused
from spectral_gan.visualize import image_grid, scatter_image

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class GAN(pl.LightningModule):
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: AdversarialLoss,
        g_optimizer: OptimizerFactory = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        d_optimizer: OptimizerFactory = partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999)),
        n_dis: int = 1,
        batch_size: int = 64,
        ema_decay: float = 0.0,
        ema_start: int = 0,
        log_every: int = 50,
        sample_every: int = 500,
        num_samples: int = 64,
        sample_dir: str | None = None,
        reference_points: torch.Tensor | None = None,
        hparams: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.G, self.D, self.loss = generator, discriminator, loss
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.n_dis, self.batch_size = n_dis, batch_size
        self.log_every, self.sample_every = log_every, sample_every
        self.sample_dir = sample_dir
        self.reference_points = reference_points
        self.ema_start = ema_start
        self.G_ema = (AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay),
                                    use_buffers=True) if ema_decay > 0 else None)
        if self.G_ema is not None:  # averaged, never trained: keep it out of autograd and DDP
            self.G_ema.requires_grad_(False)
        z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("fixed_z", z)
        self.run_hparams = hparams or {}
        if hparams:
            self.save_hyperparameters(hparams, logger=False)
        self._hparams_logged = False

    # -- optimizers -------------------------------------------------------------------------
    def configure_optimizers(self):
        return [self.d_optimizer(self.D.parameters()), self.g_optimizer(self.G.parameters())]

    @property
    def gen_step(self) -> int:
        """Generator updates completed (Lightning's global_step counts all optimizer steps)."""
        return self.trainer.global_step // (self.n_dis + 1)

    @property
    def total_steps(self) -> int:
        return self.trainer.max_steps // (self.n_dis + 1)

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.device)

    # -- the step -----------------------------------------------------------------------------
    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        d_opt, g_opt = self.optimizers()
        reals = batch.split(self.batch_size)
        for real in reals:
            with torch.no_grad():
                fake = self.G(self._noise(real.shape[0]))
            with parametrize.cached():  # D's weights (and their power iteration) once per update
                d_real, d_fake = self.D(real), self.D(fake)
                loss_d = self.loss.d(d_real, d_fake)
                d_opt.zero_grad(set_to_none=True)
                self.manual_backward(loss_d)
            d_opt.step()

        with self.toggled_optimizer(g_opt), power_iteration_paused(self.D), parametrize.cached():
            d_gen = self.D(self.G(self._noise(self.batch_size)))
            loss_g = self.loss.g(d_gen)
            g_opt.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            g_opt.step()

        step = self.gen_step
        if self.G_ema is not None and step > self.ema_start:
            self.G_ema.update_parameters(self.G)
        self.log("gen_step", float(step), logger=False)  # for checkpoint file names
        if step % self.log_every == 0 or step == self.total_steps:
            self._log_scalars(step, loss_d, loss_g, d_real, d_fake, d_opt, g_opt)
        if step % self.sample_every == 0 or step == self.total_steps:
            self.log_samples(step)

    # -- logging ------------------------------------------------------------------------------
    def _log_scalars(self, step, loss_d, loss_g, d_real, d_fake, d_opt, g_opt) -> None:
        metrics = {
            "loss/d": loss_d.item(), "loss/g": loss_g.item(),
            "d/real": d_real.mean().item(), "d/fake": d_fake.mean().item(),
            "lr/d": d_opt.param_groups[0]["lr"], "lr/g": g_opt.param_groups[0]["lr"],
        }
        self.log_dict({"loss_d": metrics["loss/d"], "loss_g": metrics["loss/g"]},
                      prog_bar=True, logger=False)
        hp = {"hp/loss_d": metrics["loss/d"], "hp/loss_g": metrics["loss/g"]}
        for logger in self.loggers:
            if not self._hparams_logged:
                if isinstance(logger, TensorBoardLogger):  # HParams view: params + these metrics
                    logger.log_hyperparams(self.run_hparams, metrics=hp)
                else:
                    logger.log_hyperparams(self.run_hparams)
            logger.log_metrics({**metrics, **hp}, step=step)
        self._hparams_logged = True

    @property
    def sampler(self) -> nn.Module:
        """The EMA generator once it has started averaging, else the generator."""
        if self.G_ema is not None and self.G_ema.n_averaged.item() > 0:
            return self.G_ema.module
        return self.G

    @torch.no_grad()
    def samples(self, z: torch.Tensor | None = None) -> torch.Tensor:
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(self.fixed_z if z is None else z)
        finally:
            net.train(was_training)

    def log_samples(self, step: int) -> None:
        out = self.samples()
        if out.dim() == 4:
            picture = image_grid(out)
        else:
            picture = scatter_image(out if len(out) >= 512 else self.samples(self._noise(2048)),
                                    self.reference_points)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", picture, step)
        if self.sample_dir and self.trainer.is_global_zero:
            os.makedirs(self.sample_dir, exist_ok=True)
            save_image(picture, os.path.join(self.sample_dir, f"step_{step:06d}.png"))
