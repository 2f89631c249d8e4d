"""FID, KID and IS with one feature extractor, streamed through torchmetrics.

torchmetrics keeps FID's running sums (features, their outer products, counts), never the
images; KID keeps the features. The reference (real) side is computed once and can be saved to
and loaded from a cache file (``evaluation.Evaluator`` keys it by everything that defines the
reference set; the file records that identity and is checked on load).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from spectral_gan.metrics import feature_metrics


class _OnePass:
    """The extractor's outputs for the batch in hand, so that FID, KID, IS and the evaluator's
    per-class statistics share one pass per batch instead of running the network once each
    (torchmetrics calls its ``feature=`` module in every metric's ``update``).

    The cached batch is recognised by identity (a strong reference is kept, so the id cannot be
    reused) and by its in-place version counter. ``both`` computes features and logits in one
    pass where the network gives both (Inception through torch-fidelity, the digit classifier);
    without it each output is computed on first use."""

    def __init__(self, features: Callable, logits: Callable | None, both: Callable | None) -> None:
        self.fns = (features, logits)
        self.both = both
        self.clear()

    def clear(self) -> None:
        self._input: torch.Tensor | None = None
        self._version: int | None = None
        self._out: list[torch.Tensor | None] = [None, None]

    @staticmethod
    def _version_of(images: torch.Tensor) -> int | None:
        try:
            return images._version
        except RuntimeError:  # inference-mode tensors keep no version counter (and are immutable)
            return None

    def get(self, images: torch.Tensor, which: int) -> torch.Tensor:
        if images is not self._input or self._version_of(images) != self._version:
            self.clear()
            self._input, self._version = images, self._version_of(images)
        if self._out[which] is None:
            if self.both is not None:
                self._out = list(self.both(images))
            else:
                self._out[which] = self.fns[which](images)
        return self._out[which]


class _Call(nn.Module):
    """One output of the shared pass as a module, as torchmetrics' ``feature=`` expects."""

    def __init__(self, one_pass: _OnePass, which: int, num_features: int) -> None:
        super().__init__()
        self.one_pass = one_pass
        self.which = which
        self.num_features = num_features
        self.fn = one_pass.fns[which]  # an nn.Module here is registered, so suite.to(device) moves it

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.one_pass.get(images, self.which)


def _seeded(compute: Callable[[], Any], seed: int = 0) -> Any:
    """``compute()`` with the CPU random generator seeded and restored afterwards.

    torchmetrics' InceptionScore shuffles the samples into its splits, and KID draws its subsets,
    with the global generator (``torch.randperm``): unseeded, the same samples score differently
    on each call (real held-out digits: IS 8.83 on one call, 8.87 on another). Seeding makes a
    score a function of the samples; forking leaves the caller's random stream untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return compute()


class MetricSuite(nn.Module):
    """``add_real``/``add_fake`` batches of images in [-1, 1]; ``compute()`` gives
    ``{"fid", "kid", "kid_std", "is", "is_std"}`` (those that apply), names ending in ``suffix``."""

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor], num_features: int,
                 logits: Callable[[torch.Tensor], torch.Tensor] | None = None, kid: bool = False,
                 kid_subset_size: int = 1000, suffix: str = "",
                 features_and_logits: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
                 | None = None, extra: Iterable[str] = ()) -> None:
        super().__init__()
        self.suffix = suffix
        # ``features_and_logits``: both from one pass of the network (used only with ``logits``)
        self._one_pass = _OnePass(features, logits,
                                  features_and_logits if logits is not None else None)
        feature = _Call(self._one_pass, 0, num_features)
        self.fid = FrechetInceptionDistance(feature=feature, reset_real_features=False)
        self.kid = (KernelInceptionDistance(feature=feature, subset_size=kid_subset_size,
                                            reset_real_features=False) if kid else None)
        self.inception_score = (InceptionScore(feature=_Call(self._one_pass, 1, 0))
                                if logits is not None else None)
        self.num_features = num_features
        # Plugin metrics of the same features (metrics/feature_metrics.py), by name
        self.extra = feature_metrics.build(extra, num_features)
        self._fed = feature_metrics.fed(self.extra)  # shared states once (PRDC's four: one)

    @property
    def n_real(self) -> int:
        return int(self.fid.real_features_num_samples)

    @property
    def n_fake(self) -> int:
        return int(self.fid.fake_features_num_samples)

    def add_real(self, images: torch.Tensor) -> None:
        self.fid.update(images, real=True)
        if self.kid is not None:
            self.kid.update(images, real=True)
        for metric in self._fed:
            metric.update(self.features(images), real=True)  # the pass FID just made

    def add_fake(self, images: torch.Tensor) -> None:
        self.fid.update(images, real=False)
        if self.kid is not None:
            self.kid.update(images, real=False)
        if self.inception_score is not None:
            self.inception_score.update(images)
        for metric in self._fed:
            metric.update(self.features(images), real=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The FID features of ``images``: free for the batch just added (the shared pass)."""
        return self._one_pass.get(images, 0)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The IS logits of ``images`` (a suite built with ``logits``), likewise shared."""
        if self._one_pass.fns[1] is None:
            raise RuntimeError("this suite has no logits (built without logits=)")
        return self._one_pass.get(images, 1)

    def names(self) -> list[str]:
        """The keys ``compute`` returns (KID and IS standard deviations aside)."""
        names = ["fid"] + (["kid"] if self.kid is not None else []) + (
            ["is"] if self.inception_score is not None else []) + list(self.extra)
        return [n + self.suffix for n in names]

    def compute(self) -> dict[str, float]:
        self._one_pass.clear()  # the last batch's images and outputs are not needed any more
        out: dict[str, float] = {}
        n = min(self.n_real, self.n_fake)
        if n <= self.num_features:
            warnings.warn(
                f"FID from {self.n_real} real and {self.n_fake} generated samples: with "
                f"{self.num_features}-d features the covariance needs more than {self.num_features} "
                f"samples per side to be full rank, so this FID is biased; raise eval.num_samples")
        out["fid"] = float(self.fid.compute())
        if self.kid is not None:
            subset = min(self.kid.subset_size, n)
            self.kid.subset_size = subset
            mean, std = _seeded(self.kid.compute)
            out["kid"], out["kid_std"] = float(mean), float(std)
        if self.inception_score is not None:
            mean, std = self.inception_score_value()
            out["is"], out["is_std"] = float(mean), float(std)
        for name, metric in self.extra.items():
            out[name] = float(metric.compute())
        return {k + self.suffix: v for k, v in out.items()}

    def inception_score_value(self) -> tuple[torch.Tensor, torch.Tensor]:
        """IS mean and std over torchmetrics' 10 splits, the same on every call for the same
        samples (``_seeded``)."""
        return _seeded(self.inception_score.compute)

    def reset_fake(self) -> None:
        """Forget generated samples, keep the reference statistics."""
        self._one_pass.clear()
        self.fid.reset()  # reset_real_features=False keeps the real side
        if self.kid is not None:
            self.kid.reset()
        if self.inception_score is not None:
            self.inception_score.reset()
        for metric in self._fed:
            metric.reset_fake()

    def keep_moments_only(self) -> None:
        """FID alone: for a reference given as saved mean and covariance, which carries no
        features for KID or the feature metrics (precision, recall, density, coverage)."""
        self.kid, self.extra, self._fed = None, {}, []

    # -- reference statistics cache ------------------------------------------------------------
    def real_state(self) -> dict[str, torch.Tensor]:
        state = {"sum": self.fid.real_features_sum, "cov_sum": self.fid.real_features_cov_sum,
                 "n": self.fid.real_features_num_samples}
        if self.kid is not None:
            state["kid_features"] = torch.cat(self.kid.real_features).half()
        for metric in self._fed:  # plugins that save their real side (all do: load_real)
            state.update(metric.real_state())
        return {k: v.detach().cpu() for k, v in state.items()}

    def load_real_state(self, state: dict[str, torch.Tensor]) -> None:
        device = self.fid.real_features_sum.device
        self.fid.real_features_sum = state["sum"].to(device, torch.float64)
        self.fid.real_features_cov_sum = state["cov_sum"].to(device, torch.float64)
        self.fid.real_features_num_samples = state["n"].to(device)
        if self.kid is not None and "kid_features" in state:
            self.kid.real_features = [state["kid_features"].to(device, torch.float32)]
        for metric in self._fed:
            metric.load_real_state({k: v.to(device) for k, v in state.items()
                                    if isinstance(v, torch.Tensor)})

    def _cache_problem(self, state: object, identity: str) -> str | None:
        """Why ``state`` cannot serve as this suite's reference side (None: it can). Checked
        before anything is loaded, so a bad file never leaves half its values in the metric."""
        if not isinstance(state, dict):
            return "it is not a statistics file"
        if state.get("identity") != identity:
            return "it holds statistics of other reference images"
        shapes = {"sum": self.fid.real_features_sum.shape,
                  "cov_sum": self.fid.real_features_cov_sum.shape, "n": torch.Size([])}
        if self.kid is not None:
            shapes["kid_features"] = None
        for metric in self._fed:  # e.g. a cache written before these metrics were switched on
            shapes.update(dict.fromkeys(metric.real_state(), None))
        for key, shape in shapes.items():
            value = state.get(key)
            if not isinstance(value, torch.Tensor) or (shape is not None and value.shape != shape):
                return f"its {key} is missing or has the wrong shape"
        return None

    def _cacheable(self) -> bool:
        """Whether every plugin metric can save and load its real side (else it is recomputed)."""
        return all(callable(getattr(m, "real_state", None)) and
                   callable(getattr(m, "load_real_state", None)) for m in self._fed)

    def save_real(self, path: str, identity: str = "") -> None:
        """Write the reference statistics to ``path`` atomically, with the ``identity`` (what
        they were computed from) inside. The temporary file has a unique name in the same
        folder, so concurrent jobs of a sweep never write into each other's file; the last
        rename wins and every reader sees one whole file."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({**self.real_state(), "identity": identity}, f)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def load_real(self, path: str, identity: str = "") -> bool:
        """Load cached reference statistics; False (recompute) when there are none, or when the
        file is unreadable, incomplete or was computed from something else (with a warning:
        a corrupt cache must not stop every later run)."""
        if not os.path.exists(path) or not self._cacheable():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            problem = self._cache_problem(state, identity)
        except Exception as err:  # noqa: BLE001  truncated, not a zip, not a torch file ...
            problem = f"it could not be read ({type(err).__name__})"
        if problem is None:
            self.load_real_state(state)
            return True
        warnings.warn(f"reference statistics cache {path} is discarded: {problem}; recomputing")
        return False
