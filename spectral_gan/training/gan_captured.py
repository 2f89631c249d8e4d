"""The captured training step in the GAN module (``speed.capture_step``): whether it runs,
decided once at the start of training, and the D and G updates through the compiled functions
of ``captured_step.py`` in place of the eager ones.

- ``false``: the eager step (``gan.py``). ``auto``: captured on a GPU where ``captured_step.
  refusal`` finds nothing, eager otherwise (on the CPU compiling it measured no faster,
  docs/benchmarks.md). ``true``: captured, and a refused combination is a ``ConfigError`` before
  the first step.
- The compile backend is ``speed.compile_backend`` (inductor; ``aot_eager`` or ``eager`` for
  tests and debugging: no speed-up, same numbers); ``mode=reduce-overhead`` (CUDA graphs) with
  inductor on a GPU, each training step marked as a new one (``on_train_batch_start``). Neither
  the GPU path nor its speed has been run yet (no GPU in the session that wired it).
- Each update returns what the eager one does (the per-step statistics the callbacks read, with
  ``lecam`` None: LeCam is refused), the divergence guard sees each loss after the call (the
  update itself is skipped on the device when the loss is not finite), OSN's per-update gates
  run inside the D update, and the EMA step inside the G update once the average has started
  (its first, copying update stays ``_after_step``'s). Adam's state is the optimizer's own, in
  its own format: checkpoints of either step load into the other.

A mixin of ``spectral_gan.training.gan.GAN``: it reads the module's ``G``, ``D``, ``G_ema``,
``loss``, ``settings``, ``penalty``, ``guard``, ``lecam`` and ``_joint``."""
from __future__ import annotations

from typing import Any

import torch

from spectral_gan.models.pack import pack_of
from spectral_gan.training import captured_step as cs


class CapturedStep:
    _captured: tuple[Any, Any] | None = None  # the compiled (D update, G update) when on
    _cudagraphs = False  # whether they run as CUDA graphs (inductor, mode=reduce-overhead)

    def _decide_capture(self) -> None:
        """``speed.capture_step`` resolved on the device (``on_train_start``): compiles the two
        updates (lazily: at their first call) when on."""
        self._captured = None
        opts = self.optimizers(use_pl_optimizer=False)
        backend = self.settings.capture_backend
        reason = cs.refusal(
            precision=str(self.trainer.precision), world_size=self.trainer.world_size,
            gradient_clip=self.trainer.gradient_clip_val,
            pack_per_slot=pack_of(self.D) > 1 and self.settings.pack_generator == "per_slot",
            optimizers=opts, lecam=self.lecam is not None,
            fault=self.settings.fault.nan_at_step is not None, discriminator=self.D,
            backend=backend)
        if not cs.capture_step_on(self.settings.capture_step, self.device.type, reason):
            return
        d_opt, g_opt = opts
        for opt in opts:
            cs.prepare_adam(opt)
        penalty = self._captured_penalty if self.penalty is not None else None

        def d_step(real, z, y_real, y_fake):
            return cs.d_update(self.G, self.D, self.loss, d_opt, real, z, d_fn=self._d,
                               penalty=penalty, y_real=y_real, y_fake=y_fake, joint=self._joint)

        def g_step(z, y, real, y_real, ema: bool):
            return cs.g_update(self.G, self.D, self.loss, g_opt, z, d_fn=self._d, y=y, real=real,
                               y_real=y_real, ema=self.G_ema if ema else None,
                               ema_decay=self.settings.ema.decay)

        mode = "reduce-overhead" if self.device.type == "cuda" else None
        self._cudagraphs = mode is not None and backend == "inductor"
        self._captured = (cs.compile_update(d_step, mode, backend),
                          cs.compile_update(g_step, mode, backend))

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # CUDA graphs: a new training step, so the last step's outputs (statistics, p.grad) may
        # be overwritten by the coming replays (torch.compiler docs, "CUDAGraph Trees")
        if self._captured is not None and self._cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()

    def _captured_penalty(self, real: torch.Tensor, fake: torch.Tensor,
                          y_real: torch.Tensor | None) -> torch.Tensor:
        # no GradScaler scale: 16-mixed is refused
        return self.penalty.fn(*self._penalty_d(real, fake, y_real), weight=self.penalty_weight)

    def _captured_d(self, real: torch.Tensor, d_opt,
                    y_real: torch.Tensor | None = None) -> dict[str, Any] | None:
        """``_discriminator_update`` through the compiled D update."""
        step = self.gen_step + 1
        y_fake = self._fake_labels(real.shape[0])
        cs.sync_lr(d_opt)
        stats = self._captured[0](real, self._noise(real.shape[0]), y_real, y_fake)
        stats.pop("bad")
        finite = self.guard.allow(stats["loss_d"], d_opt, "discriminator loss", step)
        if self.diverged or not finite:
            return None
        return {**stats, "lecam": None}

    def _captured_g(self, g_opt, real: torch.Tensor,
                    y_real: torch.Tensor | None) -> torch.Tensor | None:
        """The generator update (and, once started, the EMA's) through the compiled G update;
        its loss, or None when the run diverged. ``g_opt``: Lightning's optimizer, whose step
        count (the ``global_step``) advances by one as ``g_opt.step()`` would advance it."""
        cs.sync_lr(g_opt)
        y = self._fake_labels(self.g_batch_size)
        # the EMA's update in the graph once it has started (_after_step then skips it)
        ema = (self.G_ema is not None and self._ema_started
               and self.gen_step + 1 > self.settings.ema.start)
        with self.toggled_optimizer(g_opt):  # D frozen
            out = self._captured[1](self._noise(self.g_batch_size), y, real, y_real, ema)
        self.guard.allow(out["loss_g"], g_opt, "generator loss", self.gen_step + 1)
        if self.diverged:
            return None
        g_opt._on_before_step()  # Lightning's count of the step (manual optimization's hooks)
        g_opt._on_after_step()
        return out["loss_g"]
