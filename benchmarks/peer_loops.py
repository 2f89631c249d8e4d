"""StudioGAN's and Mimicry's SNGAN training iteration (one generator step and its n_dis D steps),
written here from reading their code (nothing copied; file paths cited at each piece), for
benchmarks/peers.py.

What each does per generator step (read 2026-12, the GitHub versions the code index holds):

StudioGAN (POSTECH-CVLab/PyTorch-StudioGAN)
- src/loader.py: per step ``train_discriminator`` then ``train_generator`` (``d_first``); the
  losses are read with ``.item()`` only every ``RUN.print_freq`` steps (``log_train_statistics``),
  so no host sync per step.
- src/worker.py ``train_discriminator``: ``make_GAN_trainable`` (train mode), ``toggle_grad``
  (requires_grad False on every G parameter, True on D's: a Python loop over parameters),
  ``Gen.apply(untrack_bn_statistics)`` (G's BatchNorms stop updating running stats), one fetch of
  ``d_updates_per_step`` (5) batches split into 5; per D step: ``d_optimizer.zero_grad()``, under
  ``torch.cuda.amp.autocast()`` if ``RUN.mixed_precision``: fresh z and labels, G(z) *with* grad
  mode on but G frozen (so no graph through G), D(real) and D(fake) as two passes, hinge
  (src/utils/losses.py ``d_hinge``: mean relu(1-real) + mean relu(1+fake)); ``scaler.scale(loss)
  .backward()``, ``scaler.step``, ``scaler.update`` (GradScaler, fp16) or plain backward/step.
- ``train_generator``: toggle_grad (D frozen, G on), ``Gen.apply(track_bn_statistics)``,
  ``g_optimizer.zero_grad()``, a fresh G(z) (not the D step's fakes), D(G(z)), ``g_hinge``
  (-mean), backward/step (scaler as above); EMA only if ``MODEL.apply_g_ema`` (off for SNGAN).
- src/utils/ops.py: ``snconv2d``/``snlinear`` = ``torch.nn.utils.spectral_norm(..., eps=1e-6)``:
  one power iteration in a forward pre-hook on *every* forward in train mode (11 per iteration
  here: 2 per D step, 1 in the G step), in the autocast dtype under AMP; BatchNorm eps 1e-4.
- Architectures: src/models/resnet.py at 32 px with g_conv_dim=d_conv_dim=64 (src/config.py
  defaults): G 4x4x256 and three up-blocks of 256 (nearest upsampling), D an optimized block and
  three blocks of 128, ReLU, global sum pooling, dense; src/models/deep_conv.py: the SN paper's
  CNN (G 4x4x512 dense with no BatchNorm after it, three 4x4/2 deconvs, D seven convs 64..512)
  ending in a global sum pooling and a dense layer. Adam lr 2e-4, betas (0.5, 0.999), batch 64,
  5 D steps (src/config.py). Its CIFAR-10 SNGAN config (src/configs/CIFAR10/SNGAN.yaml) is
  class-conditional (cBN, projection D); here W/O (unconditional), as ours.

Mimicry (kwotsin/mimicry)
- torch_mimicry/training/trainer.py ``Trainer.train``: per iteration n_dis (5) D steps, each with
  its own batch (``_fetch_data``: ``.to(device)``); the G step runs first, inside the loop at
  ``i == 0``; then ``scheduler.step`` (linear decay: the lr set on param_groups[0]) and
  ``logger.print_log`` every ``print_steps`` (default 1: a line per iteration).
- torch_mimicry/nets/gan/gan.py ``BaseGenerator.train_step``: ``self.zero_grad()`` (G only), a
  fresh G(z), D(G(z)) with D's parameters *not* frozen (D's weight gradients are computed and
  thrown away by D's next ``zero_grad``), hinge, backward, ``optG.step()``, ``errG`` logged with
  ``.item()`` (torch_mimicry/training/metric_log.py ``add_metric``).
- ``BaseDiscriminator.train_step``: ``self.zero_grad()``, D(real), then G(z) with grad mode on
  and G trainable (a graph through G is built, then ``.detach()``; G's BatchNorm stats update),
  D(fake), hinge, backward, ``optD.step()``, then ``errD.item()`` and ``compute_probs`` (two
  ``sigmoid(...).mean().item()``): 3 host syncs per D step, 16 per iteration.
- torch_mimicry/nets/sngan/sngan_32.py: G ngf=256 (bilinear upsampling in
  torch_mimicry/modules/resblocks.py ``GBlock``), D ndf=128, ReLU, global sum pooling,
  ``SNLinear``. Its SN layers come from torch_mimicry/modules/layers.py ``SNConv2d``/``SNLinear``
  whose default (``default=True``) is ``torch.nn.utils.spectral_norm`` (eps 1e-12); the own
  implementation in torch_mimicry/modules/spectral_norm.py (u as a (1, out) buffer, the power
  iteration under no_grad, sigma = u W v^T with gradient, u written back in train mode only) is
  ``default=False``: ``mimicry_sn="own"`` here. Mimicry has no SN-paper CNN (its dcgan_cifar.py
  is a ResNet), so its CNN row runs the SN paper's CNN under Mimicry's loop. No AMP anywhere.
  (Aside: its ``DBlock`` applies ``nn.ReLU(inplace=True)`` to the block input before the
  shortcut reads it; same cost either way.) Adam lr 2e-4, betas (0.0, 0.9) (its SNGAN example).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class OwnSN(nn.Module):
    """Mimicry's own spectral norm, as torch_mimicry/modules/spectral_norm.py describes it."""

    def __init__(self, layer: nn.Module, eps: float = 1e-12) -> None:
        super().__init__()
        self.layer, self.eps = layer, eps
        self.register_buffer("sn_u", torch.randn(1, layer.weight.shape[0]))

    def normalized_weight(self) -> torch.Tensor:
        w = self.layer.weight
        mat = w.view(w.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(self.sn_u @ mat, eps=self.eps)
            u = F.normalize(v @ mat.t(), eps=self.eps)
        sigma = u @ (mat @ v.t())
        if self.training:
            with torch.no_grad():
                self.sn_u.copy_(u)
        return w / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, self.normalized_weight(), self.layer.bias)
        return F.linear(x, self.normalized_weight(), self.layer.bias)


def sn_wrapper(peer: str, mimicry_sn: str = "torch") -> Callable[[nn.Module], nn.Module]:
    if peer == "mimicry" and mimicry_sn == "own":
        return OwnSN
    eps = 1e-6 if peer == "studiogan" else 1e-12
    return lambda layer: nn.utils.spectral_norm(layer, eps=eps)


def sn_weights(D: nn.Module) -> list[torch.Tensor]:
    """The normalized weight each SN layer of D last used (for the sigma ~ 1 check)."""
    out = []
    for m in D.modules():
        if isinstance(m, OwnSN):
            out.append(m.normalized_weight().detach())
        elif hasattr(m, "weight_orig"):
            out.append(m.weight.detach())
    return out


class CNNGenerator(nn.Module):
    """SN paper's CNN G (Table 3a): dense 4x4x8ch, three 4x4/2 deconvs with BN and ReLU, conv3x3."""

    def __init__(self, ch: int, z_dim: int = 128, dense_bn: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        self.z_dim, self.top = z_dim, 8 * ch
        self.dense = nn.Linear(z_dim, 16 * self.top)
        layers: list[nn.Module] = [nn.BatchNorm2d(self.top, eps=bn_eps), nn.ReLU(True)] if dense_bn else []
        c = self.top
        for _ in range(3):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.BatchNorm2d(c // 2, eps=bn_eps), nn.ReLU(True)]
            c //= 2
        self.net = nn.Sequential(*layers, nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.dense(z).view(-1, self.top, 4, 4))


class CNNDiscriminator(nn.Module):
    """SN paper's CNN D (Table 3b), leaky ReLU 0.1; ``head``: "flatten" (the paper, Mimicry's
    row) or "sum" (StudioGAN's deep_conv.py: global sum pooling, then dense)."""

    def __init__(self, ch: int, sn: Callable, head: str = "flatten") -> None:
        super().__init__()
        spec = [(ch, 3, 1), (ch, 4, 2), (2 * ch, 3, 1), (2 * ch, 4, 2), (4 * ch, 3, 1), (4 * ch, 4, 2), (8 * ch, 3, 1)]
        layers, c = [], 3
        for out, k, s in spec:
            layers += [sn(nn.Conv2d(c, out, k, s, (k - 1) // 2)), nn.LeakyReLU(0.1, True)]
            c = out
        self.features, self.head_kind = nn.Sequential(*layers), head
        self.head = sn(nn.Linear(c if head == "sum" else 16 * c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.head(h.sum((2, 3)) if self.head_kind == "sum" else h.flatten(1))


class GBlock(nn.Module):
    def __init__(self, c: int, mode: str, bn_eps: float) -> None:
        super().__init__()
        self.mode = mode
        self.b1, self.b2 = nn.BatchNorm2d(c, eps=bn_eps), nn.BatchNorm2d(c, eps=bn_eps)
        self.c1, self.c2, self.sc = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 1)

    def up(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "bilinear":  # Mimicry's GBlock: align_corners=False
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.b2(self.c1(self.up(F.relu(self.b1(x)))))))
        return h + self.sc(self.up(x))


class ResNetGenerator(nn.Module):
    def __init__(self, ch: int, mode: str, z_dim: int = 128, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.z_dim, self.ch = z_dim, ch
        self.l1 = nn.Linear(z_dim, 16 * ch)
        self.blocks = nn.Sequential(*[GBlock(ch, mode, bn_eps) for _ in range(3)])
        self.b5, self.c5 = nn.BatchNorm2d(ch, eps=bn_eps), nn.Conv2d(ch, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.l1(z).view(-1, self.ch, 4, 4))
        return torch.tanh(self.c5(F.relu(self.b5(h))))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, sn: Callable, down: bool, first: bool = False) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.c1, self.c2 = sn(nn.Conv2d(cin, cout, 3, 1, 1)), sn(nn.Conv2d(cout, cout, 3, 1, 1))
        self.sc = sn(nn.Conv2d(cin, cout, 1)) if (first or down or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:  # the "optimized" block: conv, ReLU, conv, pool; shortcut pool, conv1x1
            return F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2) + self.sc(F.avg_pool2d(x, 2))
        h = self.c2(F.relu(self.c1(F.relu(x))))
        sc = x if self.sc is None else self.sc(x)
        return (F.avg_pool2d(h, 2) + F.avg_pool2d(sc, 2)) if self.down else h + sc


class ResNetDiscriminator(nn.Module):
    def __init__(self, ch: int, sn: Callable) -> None:
        super().__init__()
        self.blocks = nn.Sequential(DBlock(3, ch, sn, True, first=True), DBlock(ch, ch, sn, True),
                                    DBlock(ch, ch, sn, False), DBlock(ch, ch, sn, False))
        self.l5 = sn(nn.Linear(ch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l5(F.relu(self.blocks(x)).sum((2, 3)))


@dataclass
class Peer:
    """One peer's networks, optimizers and data on the device, ready to run ``iteration``."""
    name: str
    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    reals: torch.Tensor
    batch: int
    n_dis: int
    precision: str
    device: torch.device
    scaler: torch.amp.GradScaler | None = None
    cursor: int = 0
    step: int = 0
    log: io.StringIO = field(default_factory=io.StringIO)

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def next_reals(self, batches: int) -> torch.Tensor:
        n = batches * self.batch
        if self.cursor + n > len(self.reals):
            self.cursor = 0
        self.cursor += n
        return self.reals[self.cursor - n:self.cursor]

    def z(self) -> torch.Tensor:
        return torch.randn(self.batch, self.G.z_dim, device=self.device)

    def update(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:  # StudioGAN's mixed_precision path (src/worker.py)
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()

    def iteration(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (studiogan_iteration if self.name == "studiogan" else mimicry_iteration)(self)


def _toggle_grad(model: nn.Module, on: bool) -> None:  # StudioGAN src/utils/misc.py toggle_grad
    for p in model.parameters():
        p.requires_grad = on


def _track_bn(on: bool) -> Callable[[nn.Module], None]:  # misc.(un)track_bn_statistics
    def apply(m: nn.Module) -> None:
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = on
    return apply


def studiogan_iteration(s: Peer) -> tuple[torch.Tensor, torch.Tensor]:
    # train_discriminator (src/worker.py)
    s.G.train(), s.D.train(), s.G.apply(_track_bn(True))  # make_GAN_trainable
    _toggle_grad(s.G, False), _toggle_grad(s.D, True)
    s.G.apply(_track_bn(False))
    for real in s.next_reals(s.n_dis).split(s.batch):  # sample_data_basket: one fetch, split
        s.opt_d.zero_grad()
        with s.autocast():
            torch.randint(0, 10, (s.batch,), device=s.device)  # sample_y: labels drawn even W/O
            fake = s.G(s.z())
            loss_d = F.relu(1.0 - s.D(real)).mean() + F.relu(1.0 + s.D(fake)).mean()
        s.update(loss_d, s.opt_d)
    # train_generator
    s.G.train(), s.D.train(), s.G.apply(_track_bn(True))
    _toggle_grad(s.D, False), _toggle_grad(s.G, True)
    s.G.apply(_track_bn(True))
    s.opt_g.zero_grad()
    with s.autocast():
        torch.randint(0, 10, (s.batch,), device=s.device)
        loss_g = -s.D(s.G(s.z())).mean()
    s.update(loss_g, s.opt_g)
    s.step += 1
    return loss_d, loss_g


def mimicry_iteration(s: Peer, num_steps: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
    logs: dict[str, float] = {}
    for i in range(s.n_dis):  # torch_mimicry/training/trainer.py Trainer.train
        real = s.next_reals(1).to(s.device)  # _fetch_data
        if i == 0:  # nets/gan/gan.py BaseGenerator.train_step
            s.G.zero_grad()
            with s.autocast():
                err_g = -s.D(s.G(s.z())).mean()
            s.update(err_g, s.opt_g)
            logs["errG"] = err_g.item()
        s.D.zero_grad()  # BaseDiscriminator.train_step
        with s.autocast():
            out_real = s.D(real)
            out_fake = s.D(s.G(s.z()).detach())
            err_d = F.relu(1.0 - out_real).mean() + F.relu(1.0 + out_fake).mean()
        s.update(err_d, s.opt_d)
        logs["errD"] = err_d.item()
        logs["D(x)"] = torch.sigmoid(out_real).mean().item()
        logs["D(G(z))"] = torch.sigmoid(out_fake).mean().item()
    s.step += 1
    for key, opt in (("lr_D", s.opt_d), ("lr_G", s.opt_g)):  # training/scheduler.py: linear decay
        logs[key] = opt.param_groups[0]["lr"] = opt.defaults["lr"] * (1 - s.step / num_steps)
    s.log.seek(0)  # training/logger.py print_log (print_steps=1); into memory, not the terminal
    s.log.write(" ".join(f"{k}: {round(v, 4)}" for k, v in sorted(logs.items())))
    return err_d, err_g


def build_peer(name: str, arch: str, device: torch.device, precision: str = "fp32",
               batch: int = 64, n_dis: int = 5, widths: tuple[int, int] | None = None,
               mimicry_sn: str = "torch", seed: int = 0) -> Peer:
    """``widths``: (G, D) channels; None: the peers' CIFAR-10 widths (CNN ch 64 for both;
    ResNet G 256, D 128)."""
    torch.manual_seed(seed)
    sn = sn_wrapper(name, mimicry_sn)
    studio = name == "studiogan"
    bn_eps = 1e-4 if studio else 1e-5  # StudioGAN ops.batchnorm_2d; Mimicry nn.BatchNorm2d
    if arch == "cnn":
        g_ch, d_ch = widths or (64, 64)
        G = CNNGenerator(g_ch, dense_bn=not studio, bn_eps=bn_eps)
        D = CNNDiscriminator(d_ch, sn, head="sum" if studio else "flatten")
    elif arch == "resnet":
        g_ch, d_ch = widths or (256, 128)
        G = ResNetGenerator(g_ch, "nearest" if studio else "bilinear", bn_eps=bn_eps)
        D = ResNetDiscriminator(d_ch, sn)
    else:
        raise ValueError(f"arch must be cnn or resnet, got {arch!r}")
    G, D = G.to(device), D.to(device)
    betas = (0.5, 0.999) if studio else (0.0, 0.9)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=betas)
    # bf16: StudioGAN keeps its GradScaler (its mixed_precision path with only the autocast dtype
    # changed); Mimicry has no AMP: plain autocast, no scaler.
    scaler = torch.amp.GradScaler(device.type) if studio and precision != "fp32" else None
    reals = torch.rand(4 * n_dis * batch, 3, 32, 32, device=device) * 2 - 1
    return Peer(name, G, D, opt_g, opt_d, reals, batch, n_dis, precision, device, scaler)
