"""Evaluation during and after training: FID/IS/KID (Inception or domain classifier) for images,
mode metrics for 2-D data, each value with the protocol it was measured under.

Knows data modules and metrics, nothing of Lightning: the LightningModule calls ``evaluate``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from typing import Any, Callable, Iterator, Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from spectral_gan.data.base import REFERENCE_SUBSET, GANDataModule
from spectral_gan.errors import ConfigError
from spectral_gan.metrics.extractors import CLASSIFIER_DATASETS, classifier_suite, inception_suite
from spectral_gan.metrics.registry import MetricSpec, spec
from spectral_gan.metrics.toy import mode_metrics

Generate = Callable[[int], torch.Tensor]

# The keys of an ``eval:`` block that the Evaluator reads (configs/metrics/default.yaml);
# ``every`` is the training schedule's (the LightningModule's eval_every), not the evaluator's.
CONFIG_KEYS = ("num_samples", "batch_size", "inception", "classifier", "kid", "reference_split",
               "cache_dir")
SCHEDULE_KEYS = ("every",)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"eval.{key} must be a positive integer, got {value!r}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"eval.{key} must be true or false, got {value!r}")
    return value


class Evaluator:
    """Args:
        datamodule: the training data (reference images, or modes for 2-D data).
        dataset: its config name (``mnist5k``, ``ring``, ...), for the classifier and the cache.
        num_samples: generated samples per evaluation (and reference images at most).
        inception: compute Inception FID (KID, IS) for images.
        classifier: ``auto`` (on for mnist5k/digits), ``true`` or ``false``.
        kid: also KID (keeps features, not images).
        cache_dir: where reference statistics are cached (None: not cached).
    """

    def __init__(self, datamodule: GANDataModule, dataset: str, num_samples: int = 2000,
                 batch_size: int = 250, inception: bool = False, classifier: Any = "auto",
                 kid: bool = False, reference_split: str = "train", cache_dir: str | None = None) -> None:
        # Every value is checked here, before any weights load or any data is read, so a bad
        # config fails at start-up with a sentence, not minutes later in a metric.
        num_samples = _positive_int("num_samples", num_samples)
        batch_size = _positive_int("batch_size", batch_size)
        inception, kid = _flag("inception", inception), _flag("kid", kid)
        if not (classifier == "auto" or isinstance(classifier, bool)):
            raise ConfigError(f"eval.classifier must be auto, true or false, got {classifier!r}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ConfigError(f"eval.cache_dir must be a folder path or null, got {cache_dir!r}")
        datamodule.check_reference_split(reference_split)
        self.dm, self.dataset = datamodule, dataset
        self.num_samples, self.batch_size = num_samples, batch_size
        self.reference_split, self.cache_dir = reference_split, cache_dir
        self.points = datamodule.kind == "points"
        self.suites: dict[str, Any] = {}
        # Progress bars (stderr) over the reference and the generated images: for the commands
        # (spectral-gan-eval); off inside training, whose bar is the generator steps'.
        self.progress = False
        self.protocol: dict[str, Any] = {"n_fake": self.num_samples, "dataset": dataset,
                                         "reference_split": reference_split}
        if self.points:
            self.protocol.update(extractor="none (2-D mode metrics)", threshold_std=3.0)
            return
        self.protocol["image_size"] = int(datamodule.shape[-1])
        use_classifier = dataset in CLASSIFIER_DATASETS if classifier == "auto" else bool(classifier)
        if use_classifier:
            if dataset not in CLASSIFIER_DATASETS:
                raise ConfigError(f"eval.classifier=true needs data=mnist5k or digits, got {dataset}")
            self.suites["classifier"] = classifier_suite(dataset, kid=kid)
        if inception:
            self.suites["inception"] = inception_suite(kid=kid)
        for name, (_, info) in self.suites.items():
            self.protocol[name] = dict(info)
        self._reference_ready = False

    @classmethod
    def from_config(cls, datamodule: GANDataModule,
                    eval_cfg: DictConfig | Mapping[str, Any]) -> Evaluator:
        """The evaluator an ``eval:`` config block describes (a DictConfig or a plain dict).

        Keys are those of ``configs/metrics/default.yaml``; missing ones take the constructor's
        defaults, ``every`` is ignored (the training schedule's), any other key is a ConfigError
        (a misspelt switch would otherwise be silently ignored). The dataset is the data
        module's ``dataset_name``."""
        values = (OmegaConf.to_container(eval_cfg, resolve=True) if isinstance(eval_cfg, DictConfig)
                  else dict(eval_cfg))
        unknown = sorted(set(values) - set(CONFIG_KEYS) - set(SCHEDULE_KEYS))
        if unknown:
            raise ConfigError(f"unknown eval key(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(CONFIG_KEYS + SCHEDULE_KEYS)}")
        return cls(datamodule, datamodule.dataset_name,
                   **{k: v for k, v in values.items() if k in CONFIG_KEYS})

    @property
    def primary(self) -> str | None:
        """The metric that decides the best checkpoint; its direction is ``primary_spec``."""
        if self.points:
            return "metrics/reverse_kl"
        if "inception" in self.suites:
            return "metrics/fid"
        if "classifier" in self.suites:
            return "metrics/fid_classifier"
        return None

    @property
    def primary_spec(self) -> MetricSpec | None:
        """The primary metric's registry entry: its direction (``higher_is_better``) and meaning."""
        return spec(self.primary) if self.primary else None

    def metric_names(self) -> list[str]:
        """The ``metrics/...`` names ``evaluate`` will produce (plus the tracked best)."""
        if self.points:
            names = ["metrics/modes", "metrics/high_quality", "metrics/reverse_kl"]
        else:
            names = [f"metrics/{n}" for suite, _ in self.suites.values() for n in suite.names()]
        if self.primary:
            names.append(self.primary.replace("metrics/", "metrics/best_"))
        return names

    # -- reference side ----------------------------------------------------------------------
    def _reference_batches(self) -> Iterator[torch.Tensor]:
        return self.dm.reference_images(self.reference_split, self.num_samples, self.batch_size)

    def reference_identity(self, name: str) -> str:
        """Everything that defines suite ``name``'s reference statistics, as canonical JSON:
        the data module's identity (source, folder, shape, preprocessing), split, sample count,
        extractor and its weights. It keys the cache file and is stored inside it."""
        facts = {"data": self.dm.reference_identity(), "split": self.reference_split,
                 "subset": REFERENCE_SUBSET,
                 "n": self.num_samples, "extractor": self.protocol[name]["extractor"],
                 "weights": str(self.protocol[name].get("weights"))}
        return json.dumps(facts, sort_keys=True, default=str)

    def _cache_path(self, name: str, identity: str) -> str | None:
        """A readable name plus a hash of the identity (two folders never share a file)."""
        if not self.cache_dir:
            return None
        extractor = self.protocol[name]["extractor"]
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return os.path.join(self.cache_dir, "reference_stats",
                            f"{self.dataset}-{self.reference_split}-{extractor}-"
                            f"{self.protocol['image_size']}px-{digest}-n{self.num_samples}.pt")

    def prepare_reference(self, device: torch.device) -> None:
        if self._reference_ready:
            return
        todo = {}
        identities = {name: self.reference_identity(name) for name in self.suites} if self.cache_dir else {}
        for name, (suite, _) in self.suites.items():
            suite.to(device)
            path = self._cache_path(name, identities.get(name, ""))
            if path and suite.load_real(path, identities[name]):
                self.protocol[name]["reference_cache"] = path
            else:
                todo[name] = suite
        if todo:
            with self._bar(f"reference statistics ({self.reference_split})") as bar:
                for batch in self._reference_batches():
                    for suite in todo.values():
                        suite.add_real(batch.to(device))
                    bar.update(len(batch))
                bar.total = bar.n  # a data set smaller than num_samples ends the bar full
            for name, suite in todo.items():
                path = self._cache_path(name, identities.get(name, ""))
                if path:
                    suite.save_real(path, identities[name])
                    self.protocol[name]["reference_cache"] = path
        for name, (suite, _) in self.suites.items():
            self.protocol[name]["n_real"] = suite.n_real
        self._reference_ready = True

    def _bar(self, what: str) -> tqdm:
        return tqdm(total=self.num_samples, desc=what, unit="img", file=sys.stderr,
                    disable=not self.progress, dynamic_ncols=True, smoothing=0.1)

    def inception_estimate(self, device: torch.device) -> str | None:
        """On a CPU with Inception on: how long one evaluation's Inception part will take,
        measured on a small batch (a few seconds), as a sentence; None otherwise."""
        if "inception" not in self.suites or torch.device(device).type != "cpu":
            return None
        suite, _ = self.suites["inception"]
        net = suite.fid.inception  # the feature extractor torchmetrics calls
        with torch.no_grad():
            net(torch.zeros(2, *self.dm.shape))  # warm-up (allocations, TorchScript profiling)
            started = time.perf_counter()
            net(torch.zeros(8, *self.dm.shape))
            rate = 8 / max(time.perf_counter() - started, 1e-6)
        cached = bool(self.cache_dir) and os.path.isfile(
            self._cache_path("inception", self.reference_identity("inception")) or "")
        n = self.num_samples * (1 if cached else 2)
        seconds = n / rate
        took = (f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"
                if seconds >= 90 else f"{seconds:.0f} s")
        images = (f"{self.num_samples:,} generated" if cached else
                  f"{self.num_samples:,} generated + {self.num_samples:,} reference")
        return (f"{images} images through Inception at ~{rate:.1f} images/s on this CPU: about "
                f"{took}; eval.num_samples=<fewer> or eval.inception=false shortens it")

    # -- one evaluation -----------------------------------------------------------------------
    def _generated(self, generate: Generate) -> Iterator[torch.Tensor]:
        """``num_samples`` generated samples, in batches of at most ``batch_size``."""
        for i in range(0, self.num_samples, self.batch_size):
            yield generate(min(self.batch_size, self.num_samples - i))

    @torch.no_grad()
    def evaluate(self, generate: Generate, device: torch.device) -> dict[str, float]:
        if self.points:
            samples = torch.cat([batch.cpu() for batch in self._generated(generate)])
            return {f"metrics/{k}": v for k, v in
                    mode_metrics(samples, self.dm.modes, self.dm.std).items()}
        if not self.suites:
            return {}
        self.prepare_reference(device)
        for suite, _ in self.suites.values():
            suite.reset_fake()
        with self._bar("generated samples") as bar:
            for fake in self._generated(generate):
                for suite, _ in self.suites.values():
                    suite.add_fake(fake.to(device))
                bar.update(len(fake))
        out: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the rank warning is in the protocol
            for suite, _ in self.suites.values():
                out.update({f"metrics/{k}": v for k, v in suite.compute().items()})
        return out
