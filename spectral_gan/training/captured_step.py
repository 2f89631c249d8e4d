"""The whole discriminator and generator update as functions dynamo traces without a graph break
(``speed.capture_step``), so that ``torch.compile`` (``mode="reduce-overhead"``: one CUDA graph)
can take a training step as one graph.

The eager step (``training/gan.py``) breaks a dynamo trace five ways, each replaced here by a
traceable equivalent that computes the same numbers:

- ``loss.backward()`` (dynamo does not trace it): ``torch.autograd.grad`` with
  ``torch._dynamo.config.trace_autograd_ops`` on (``tracing_autograd``), the gradients then set
  as ``p.grad`` (the per-layer diagnostics and OSN's ``grad_norm`` gate read them). The penalties'
  ``create_graph=True`` (double backward) traces the same way. ``retain_graph=True``: dynamo
  refuses ``autograd.grad`` otherwise, because ``parametrize.cached()`` keeps the normalized
  weights alive past the call (in eager mode it frees nothing earlier than the return does).
- ``Optimizer.zero_grad`` and ``Optimizer.step`` (torch marks them skipped, and ``step`` calls
  ``torch._dynamo.graph_break()`` on purpose, torch/optim/optimizer.py): ``adam_step`` calls
  torch's functional ``adam`` on the optimizer's own state, lr as a device tensor (its value
  changes with ``lr_decay`` without a recompile), so checkpoints and the eager path see one state.
- the divergence guard's host check: the step is skipped on the device instead (fused Adam's
  ``found_inf``, computed in the graph); the guard's bookkeeping runs after the call, on device.
- Lightning's ``manual_backward`` / ``strategy.optimizer_step`` (hooks, DDP's reducer, AMP's
  ``GradScaler``, whose ``step`` reads ``found_inf`` on the host): not called; what needs them is
  refused by ``refusal`` and runs eagerly.
- ``Optimizer``'s lazy state creation: ``prepare_adam`` makes the state eagerly, before a capture.

Everything else (``parametrize.cached()``, the power iteration's in-place ``u``/``v`` updates,
``power_iteration_paused``, BatchNorm's and MSN's running statistics, OSN's per-update gates, the
EMA's ``_foreach_lerp_``) already traces. Training takes it through ``training/gan_captured.py``
(the switch, and the module's glue). What the tests check: tests/test_captured_step.py.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.optim.optimizer import _get_scalar_dtype

from spectral_gan.errors import ConfigError
from spectral_gan.norms import per_update_signals, power_iteration_paused, run_per_update
from spectral_gan.training.gan_inputs import real_and_fake_logits

CAPTURE_STEP = ("auto", True, False)


def check_capture_step(value: Any) -> None:
    if value not in CAPTURE_STEP:
        raise ConfigError(f"speed.capture_step must be auto, true or false, got {value!r}")


@contextlib.contextmanager
def tracing_autograd() -> Iterator[None]:
    """Dynamo traces ``torch.autograd.grad`` inside this block (a graph break otherwise)."""
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        yield


# -- the optimizer ---------------------------------------------------------------------------

def prepare_adam(opt: torch.optim.Optimizer) -> None:
    """Create Adam's per-parameter state now, as its first ``step`` would (eagerly, before a
    capture), and a device tensor for each group's lr. Refuses what ``adam_step`` cannot do."""
    inner = getattr(opt, "optimizer", opt)
    reason = _adam_refusal(inner)
    if reason:
        raise ConfigError(reason)
    lrs = []
    for group in inner.param_groups:
        for p in group["params"]:
            state = inner.state[p]
            if len(state) == 0:
                state["step"] = torch.zeros((), dtype=_get_scalar_dtype(is_fused=group["fused"]),
                                            device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        lrs.append(torch.zeros((), dtype=torch.float32, device=group["params"][0].device))
    inner.captured_lr = lrs  # not in param_groups: kept out of checkpoints
    # Updated in place at fixed addresses (as torch marks a compiled optimizer's state): CUDA
    # graphs then take them as they are instead of skipping a graph that mutates its inputs.
    for t in [*lrs, *(v for st in inner.state.values() for v in st.values())]:
        if isinstance(t, Tensor):
            torch._dynamo.mark_static_address(t)
    sync_lr(inner)


def _adam_refusal(inner: Any) -> str | None:
    if type(inner) is not torch.optim.Adam:
        return (f"speed.capture_step=true steps torch.optim.Adam only, not "
                f"{type(inner).__name__}; use speed.capture_step=false")
    for group in inner.param_groups:
        if not (group["fused"] or group["capturable"]):
            return ("speed.capture_step=true needs Adam's step counter on the device: set "
                    "optimizer.d.fused=true and optimizer.g.fused=true (the default)")
        if group["amsgrad"] or group["maximize"]:
            return "speed.capture_step=true steps plain Adam, without amsgrad or maximize"
    return None


def sync_lr(opt: torch.optim.Optimizer) -> None:
    """Copy each group's (Python float) lr into its device tensor: one fill, no host sync."""
    inner = getattr(opt, "optimizer", opt)
    for group, lr in zip(inner.param_groups, inner.captured_lr):
        lr.fill_(float(group["lr"]))


@torch.no_grad()
def adam_step(opt: torch.optim.Optimizer, grads: Sequence[Tensor | None], bad: Tensor) -> None:
    """What ``opt.step()`` does with ``grads`` (Adam's state, Adam's update), traceable; where
    ``bad`` (0-d float) is nonzero nothing changes, as fused Adam's ``found_inf`` has it.

    torch's own functional Adam cannot be called here: its fused kernel is
    ``torch.compiler.disable``d ("don't trace into fused optimizer") and the foreach one takes
    no ``found_inf``. The arithmetic is its capturable form's (torch/optim/adam.py); inductor
    fuses the ``where`` that skips a bad update into the same kernel."""
    inner = getattr(opt, "optimizer", opt)
    by_param = dict(zip(map(id, (p for g in inner.param_groups for p in g["params"])), grads))
    ok = bad == 0
    for group, lr in zip(inner.param_groups, inner.captured_lr):
        beta1, beta2 = group["betas"]
        wd, eps = group["weight_decay"], group["eps"]
        for p in group["params"]:
            g = by_param.get(id(p))
            if g is None:
                continue
            state = inner.state[p]
            step = state["step"] + ok.to(state["step"].dtype)
            g = torch.where(ok, g, torch.zeros_like(g))
            if wd and not group["decoupled_weight_decay"]:
                g = g + wd * p
            m = state["exp_avg"].lerp(g, 1 - beta1)
            v = state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
            bias1 = 1 - torch.pow(beta1, step)
            bias2_sqrt = (1 - torch.pow(beta2, step)).sqrt()
            new = p * (1 - lr * wd) if wd and group["decoupled_weight_decay"] else p
            new = new - (lr / bias1) * m / (v.sqrt() / bias2_sqrt + eps)
            p.copy_(torch.where(ok, new, p))
            state["exp_avg"].copy_(torch.where(ok, m, state["exp_avg"]))
            state["exp_avg_sq"].copy_(torch.where(ok, v, state["exp_avg_sq"]))
            state["step"].copy_(step)


def _gradients(loss: Tensor, params: list[nn.Parameter]) -> list[Tensor]:
    """``d loss / d params``, each also left in ``p.grad`` (as ``backward`` after ``zero_grad``)."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    for p, g in zip(params, grads):
        p.grad = g  # None where loss does not depend on p (MSN's folded bias): Adam skips it
    return list(grads)


def _nonfinite(loss: Tensor) -> Tensor:
    return (~torch.isfinite(loss.detach())).float()


# -- the updates -----------------------------------------------------------------------------

Logits = Callable[[Tensor, "Tensor | None"], Tensor]


def _call(net: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    return net(x) if y is None else net(x, y)


def d_update(G: nn.Module, D: nn.Module, loss: Any, d_opt: torch.optim.Optimizer, real: Tensor,
             z: Tensor, *, d_fn: Logits | None = None,
             penalty: Callable[[Tensor, Tensor, "Tensor | None"], Tensor] | None = None,
             y_real: Tensor | None = None, y_fake: Tensor | None = None,
             joint: bool = False) -> dict[str, Any]:
    """One discriminator update as ``GAN._discriminator_update`` makes it (fakes from ``z``
    under ``no_grad`` with G's power iteration paused, D's weights and power iteration once in
    ``parametrize.cached()``, the loss, the penalty, the step, OSN's gates), with no host sync.

    ``loss``: an ``AdversarialLoss``; ``d_fn(x, y)``: D's logits (default ``D(x)``/``D(x, y)``;
    the GAN passes its ``_d``, augmentation included); ``penalty(real, fake, y_real)``: the
    weighted gradient penalty (default none). Returns the step's statistics (tensors) and
    ``bad``: 1.0 where the loss was not finite (the update was then skipped on the device)."""
    d_fn = d_fn or (lambda x, y: _call(D, x, y))
    d_params = [p for p in D.parameters() if p.requires_grad]
    with torch.no_grad(), power_iteration_paused(G):
        fake = _call(G, z, y_fake)
    with torch.enable_grad(), parametrize.cached():
        d_real, d_fake = real_and_fake_logits(d_fn, D, real, fake, y_real, y_fake, joint)
        loss_adv = loss.d(d_real, d_fake)
        total, pen = loss_adv, None
        if penalty is not None:
            pen = penalty(real, fake, y_real)
            total = loss_adv + pen
        bad = _nonfinite(total)
        grads = _gradients(total, d_params)
    adam_step(d_opt, grads, bad)
    signals = per_update_signals(D)
    if signals:  # OSN's adaptive gates (their own hook, on device)
        given = {"logit_gap": d_real.detach().mean() - d_fake.detach().mean()}
        if "grad_norm" in signals:
            given["grad_norm"] = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads if g is not None]))
        run_per_update(D, given)
    return {"loss_d": total.detach(), "loss_adv": loss_adv.detach(),
            "penalty": None if pen is None else pen.detach(), "d_real": d_real.detach(),
            "d_fake": d_fake.detach(), "real": real, "fake": fake, "y_real": y_real,
            "y_fake": y_fake, "bad": bad}


def g_update(G: nn.Module, D: nn.Module, loss: Any, g_opt: torch.optim.Optimizer, z: Tensor, *,
             d_fn: Logits | None = None, y: Tensor | None = None, real: Tensor | None = None,
             y_real: Tensor | None = None, ema: nn.Module | None = None,
             ema_decay: float = 0.0) -> dict[str, Tensor]:
    """One generator update as ``GAN.training_step`` makes it (D's power iteration paused,
    G's own norms once in ``parametrize.cached()``; a relativistic loss also scores ``real``,
    without gradient), then, with ``ema``, one EMA step (``ema_update``). Returns ``loss_g`` and
    ``bad`` (the update skipped on device).

    D must be frozen by the caller (``frozen``, or Lightning's ``toggled_optimizer``): dynamo
    does not trace ``requires_grad_``."""
    d_fn = d_fn or (lambda x, y_: _call(D, x, y_))
    g_params = [p for p in G.parameters() if p.requires_grad]
    with torch.enable_grad(), power_iteration_paused(D), parametrize.cached():
        d_gen = d_fn(_call(G, z, y), y)
        if getattr(loss, "relativistic", False):
            with torch.no_grad():
                d_paired = d_fn(real, y_real)
            loss_g = loss.g(d_gen, d_paired)
        else:
            loss_g = loss.g(d_gen)
        bad = _nonfinite(loss_g)
        grads = _gradients(loss_g, g_params)
    adam_step(g_opt, grads, bad)
    if ema is not None:
        ema_update(ema, G, ema_decay)
    return {"loss_g": loss_g.detach(), "bad": bad}


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """``net``'s parameters without gradients within the block (as ``toggle_optimizer``)."""
    states = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in states:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, was in states:
            p.requires_grad_(was)


@torch.no_grad()
def ema_update(ema: nn.Module, generator: nn.Module, decay: float) -> None:
    """``training.ema.update`` after its first (copying) call, in a form dynamo traces."""
    from spectral_gan.training import ema as ema_lib
    ema_lib.update(ema, generator, decay, first=False)


# -- when it may run -------------------------------------------------------------------------

def refusal(*, precision: str = "32-true", world_size: int = 1, gradient_clip: Any = None,
            pack_per_slot: bool = False, optimizers: Sequence[Any] = (), lecam: bool = False,
            fault: bool = False, discriminator: nn.Module | None = None,
            backend: str = "inductor") -> str | None:
    """Why the captured step cannot run this configuration (one sentence), None if it can.
    ``backend``: ``speed.compile_backend``; ``eager`` (dynamo's graphs run as they are traced,
    no AOT autograd) also takes a weight-normalized D, but gains no speed."""
    if backend != "eager" and discriminator is not None and any(
            parametrize.is_parametrized(m) for m in discriminator.modules()):
        return ("speed.capture_step=true cannot compile a weight-normalized D yet: AOT autograd "
                "finds the raw weight its division saved modified by the in-place Adam update; "
                "use norm=none, gp or bn, speed.compile_backend=eager (no speed-up) or "
                "speed.capture_step=false")
    if "16" in str(precision) and "bf16" not in str(precision):
        return ("speed.capture_step=true cannot run trainer.precision=16-mixed: its GradScaler "
                "reads found_inf on the host in every step; use bf16-mixed or 32-true")
    if world_size > 1:
        return ("speed.capture_step=true runs on one device only: DDP's gradient reduction hooks "
                "into backward(), which the captured step replaces by autograd.grad")
    if gradient_clip:
        return "speed.capture_step=true does not clip gradients; unset trainer.gradient_clip_val"
    if pack_per_slot:
        return ("speed.capture_step=true generates each batch in one G call; with "
                "discriminator.pack > 1 set pack_generator=joint")
    if lecam:
        return ("speed.capture_step=true does not run LeCam's anchors (their start step is "
                "a host-side branch); set lecam.weight=0 or speed.capture_step=false")
    if fault:
        return ("speed.capture_step=true does not inject faults (fault.nan_at_step compares "
                "the step on the host); use speed.capture_step=false")
    for opt in optimizers:
        reason = _adam_refusal(getattr(opt, "optimizer", opt))
        if reason:
            return reason
    return None


def compile_update(fn: Callable[..., Any], mode: str | None = None,
                   backend: str = "inductor") -> Callable[..., Any]:
    """``torch.compile(fn, fullgraph=True)`` called with autograd tracing on (``fullgraph``:
    a graph break is an error, not a silent split). ``mode="reduce-overhead"`` on CUDA makes
    each update one CUDA graph (inductor only; other backends take no mode)."""
    compiled = torch.compile(fn, mode=mode if backend == "inductor" else None, backend=backend,
                             fullgraph=True)

    def run(*args: Any, **kwargs: Any) -> Any:
        # Entered without grad (the updates enable it inside): AOT then traces one inference
        # graph holding the explicit backward ops, instead of a differentiable graph whose
        # in-place parameter update fails its own backward's version check.
        with tracing_autograd(), torch.no_grad():
            return compiled(*args, **kwargs)

    return run


def capture_step_on(setting: Any, device_type: str | None, reason: str | None) -> bool:
    """Whether the captured step runs (``speed.capture_step``): ``true`` is refused with
    ``reason``; ``auto`` takes it on a GPU when nothing refuses it, never on the CPU, where
    compiling it measured no faster (docs/benchmarks.md)."""
    check_capture_step(setting)
    if setting is True:
        if reason:
            raise ConfigError(reason)
        return True
    return setting == "auto" and device_type == "cuda" and reason is None
