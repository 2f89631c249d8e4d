"""Evaluation during and after training: FID/IS/KID (Inception or domain classifier) for images,
mode metrics for 2-D data, each value with the protocol it was measured under. Class-conditional
generators are asked for balanced labels and also get intra-class FID and class accuracy.

Knows data modules and metrics, nothing of Lightning: the LightningModule calls ``evaluate``.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any, Callable, Iterator, Mapping

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from spectral_gan.data.base import GANDataModule
from spectral_gan.errors import ConfigError
from spectral_gan.evaluation.reference import ReferenceStatistics
from spectral_gan.metrics.feature_metrics import feature_metrics
from spectral_gan.metrics.extractors import CLASSIFIER_DATASETS, classifier_suite, inception_suite
from spectral_gan.metrics.intra_class import IntraClassFID
from spectral_gan.metrics.prdc import NAMES as PRDC_NAMES
from spectral_gan.metrics.registry import MetricSpec, spec
from spectral_gan.metrics.toy import mode_metrics

# ``generate(n)``: n samples of an unconditional generator; a class-conditional one (the
# Evaluator's ``num_classes`` set) is called ``generate(n, labels)``, labels a long tensor of n.
Generate = Callable[..., torch.Tensor]

# The keys of an ``eval:`` block that the Evaluator reads (configs/metrics/default.yaml);
# ``every`` is the training schedule's (the LightningModule's eval_every), not the evaluator's.
CONFIG_KEYS = ("num_samples", "batch_size", "inception", "classifier", "kid", "reference_split",
               "cache_dir", "intra_fid", "metrics", "metric_modules", "prdc")
SCHEDULE_KEYS = ("every",)

# How a conditional generator's labels are drawn, as the protocol records it (``balanced_labels``).
BALANCED = "balanced (sample i gets class i mod K)"
# The suites whose intra-class FID ``intra_fid=auto`` turns on: the digit classifier's is cheap;
# Inception's needs many samples per class (its features are 2048-d) and a second Inception pass.
INTRA_FID_AUTO = ("classifier",)


def balanced_labels(start: int, n: int, num_classes: int,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """The labels of samples ``start .. start + n - 1`` of an evaluation: sample i gets class
    ``i % num_classes``, so over ``num_samples`` samples every class gets
    ``num_samples // num_classes`` of them (one more for the first ``num_samples % num_classes``
    classes), whatever the batch size."""
    return torch.arange(start, start + n, device=device) % num_classes


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"eval.{key} must be a positive integer, got {value!r}")
    return value


def _flag(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"eval.{key} must be true or false, got {value!r}")
    return value


class Evaluator(ReferenceStatistics):
    """Args:
        datamodule: the training data (reference images, or modes for 2-D data).
        dataset: its config name (``mnist5k``, ``ring``, ...), for the classifier and the cache.
        num_samples: generated samples per evaluation (and reference images at most).
        inception: compute Inception FID (KID, IS) for images.
        classifier: ``auto`` (on for mnist5k/digits), ``true`` or ``false``.
        kid: also KID (keeps features, not images).
        cache_dir: where reference statistics are cached (None: not cached).
        num_classes: the generator's number of classes when it is class-conditional (None:
            unconditional). Then ``evaluate`` calls ``generate(n, labels)`` with balanced labels
            (``balanced_labels``), the data module must have labels (``num_classes``,
            ``reference_labeled``), and the classifier suite adds ``class_accuracy``.
        intra_fid: intra-class FID of a conditional generator: ``auto`` (for the classifier
            suite only; Inception's needs many samples per class), ``true`` (every suite) or
            ``false``. Ignored for unconditional generators.
        metrics: plugin metrics of each suite's features, by name
            (``spectral_gan/metrics/feature_metrics.py``); ``metric_modules``: modules to import
            first, for metrics defined outside the package. ``prdc``: also precision, recall,
            density and coverage (``metrics/prdc.py``) for image data; ignored for 2-D data.
    """

    def __init__(self, datamodule: GANDataModule, dataset: str, num_samples: int = 2000,
                 batch_size: int = 250, inception: bool = False, classifier: Any = "auto",
                 kid: bool = False, reference_split: str = "train", cache_dir: str | None = None,
                 num_classes: int | None = None, intra_fid: Any = "auto", metrics: Any = (),
                 metric_modules: Any = (), prdc: bool = True) -> None:
        # Every value is checked here, before any weights load or any data is read, so a bad
        # config fails at start-up with a sentence, not minutes later in a metric.
        num_samples = _positive_int("num_samples", num_samples)
        batch_size = _positive_int("batch_size", batch_size)
        inception, kid, prdc = _flag("inception", inception), _flag("kid", kid), _flag("prdc", prdc)
        if not (classifier == "auto" or isinstance(classifier, bool)):
            raise ConfigError(f"eval.classifier must be auto, true or false, got {classifier!r}")
        if not (intra_fid == "auto" or isinstance(intra_fid, bool)):
            raise ConfigError(f"eval.intra_fid must be auto, true or false, got {intra_fid!r}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise ConfigError(f"eval.cache_dir must be a folder path or null, got {cache_dir!r}")
        extra = tuple(feature_metrics(metrics, metric_modules))
        if prdc and datamodule.kind != "points":  # after any the user named, without repeats
            extra = tuple(dict.fromkeys(extra + PRDC_NAMES))
        if extra and datamodule.kind == "points":
            raise ConfigError(f"eval.metrics={list(extra)} are metrics of image features; 2-D data "
                              f"({dataset}) is scored by its mode metrics: drop eval.metrics")
        datamodule.check_reference_split(reference_split)
        if num_classes is not None:
            self._check_labels(datamodule, dataset, num_classes)
        self.dm, self.dataset = datamodule, dataset
        self.num_classes = num_classes
        self.num_samples, self.batch_size = num_samples, batch_size
        self.reference_split, self.cache_dir = reference_split, cache_dir
        self.points = datamodule.kind == "points"
        self.suites: dict[str, Any] = {}
        # Progress bars (stderr) over the reference and the generated images: for the commands
        # (spectral-gan-eval); off inside training, whose bar is the generator steps'.
        self.progress = False
        self.protocol: dict[str, Any] = {"n_fake": self.num_samples, "dataset": dataset,
                                         "reference_split": reference_split}
        if num_classes is not None:
            self.protocol["conditional"] = {"num_classes": num_classes, "labels": BALANCED}
        # Per suite, the intra-class FID of a conditional generator (``intra_fid``).
        self.intra: dict[str, IntraClassFID] = {}
        if self.points:
            self.protocol.update(extractor="none (2-D mode metrics)", threshold_std=3.0)
            return
        self.protocol["image_size"] = int(datamodule.shape[-1])
        use_classifier = dataset in CLASSIFIER_DATASETS if classifier == "auto" else bool(classifier)
        if use_classifier:
            if dataset not in CLASSIFIER_DATASETS:
                raise ConfigError(f"eval.classifier=true needs data=mnist5k or digits, got {dataset}")
            self.suites["classifier"] = classifier_suite(dataset, kid=kid, extra=extra)
        if inception:
            self.suites["inception"] = inception_suite(kid=kid, extra=extra)
        for name, (_, info) in self.suites.items():
            self.protocol[name] = dict(info, **({"feature_metrics": list(extra)} if extra else {}))
        if num_classes is not None:
            self._conditional_metrics(num_classes, intra_fid)
        self._reference_ready = False

    @staticmethod
    def _check_labels(datamodule: GANDataModule, dataset: str, num_classes: Any) -> None:
        """A conditional generator needs labelled data with as many classes as it has."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer (the generator's classes), "
                              f"got {num_classes!r}")
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes is None:
            raise ConfigError(
                f"the generator is class-conditional ({num_classes} classes) but data={dataset} "
                f"has no labels, so its samples cannot be compared class by class; evaluate it on "
                f"the labelled data it was trained on, or train an unconditional generator")
        if data_classes != num_classes:
            raise ConfigError(
                f"the generator has {num_classes} classes but data={dataset} has {data_classes}; "
                f"evaluate it on the data it was trained on")

    def _conditional_metrics(self, num_classes: int, intra_fid: Any) -> None:
        """Set up intra-class FID (per ``intra_fid``) for a conditional generator's suites."""
        if "classifier" in self.suites:
            outputs = self.suites["classifier"][0].classifier.out.out_features
            if outputs != num_classes:
                raise ConfigError(f"class_accuracy needs a classifier of the generator's "
                                  f"{num_classes} classes; the digit classifier has {outputs}")
        for name, (suite, _) in self.suites.items():
            if intra_fid is True or (intra_fid == "auto" and name in INTRA_FID_AUTO):
                self.intra[name] = IntraClassFID(num_classes, suite.num_features)
        if self.intra and self.num_samples < 2 * num_classes:
            raise ConfigError(
                f"intra-class FID needs at least 2 samples per class: eval.num_samples="
                f"{self.num_samples} is fewer than 2 x {num_classes} classes; raise "
                f"eval.num_samples or set eval.intra_fid=false")
        for name in self.intra:
            # n_real, per class, once the reference is read; n_fake after each evaluation. The
            # per-class reference is not cached: it is read once per Evaluator (a training run,
            # a spectral-gan-eval call), from reference_labeled.
            self.protocol[name]["intra_fid"] = {"n_real": None, "n_fake": None,
                                                "reference_cache": None}

    @classmethod
    def from_config(cls, datamodule: GANDataModule, eval_cfg: DictConfig | Mapping[str, Any],
                    num_classes: int | None = None) -> Evaluator:
        """The evaluator an ``eval:`` config block describes (a DictConfig or a plain dict).

        Keys are those of ``configs/metrics/default.yaml``; missing ones take the constructor's
        defaults, ``every`` is ignored (the training schedule's), any other key is a ConfigError
        (a misspelt switch would otherwise be silently ignored). The dataset is the data
        module's ``dataset_name``; ``num_classes`` is the generator's when it is
        class-conditional (not a config key: it is the model's, not the protocol's)."""
        values = (OmegaConf.to_container(eval_cfg, resolve=True) if isinstance(eval_cfg, DictConfig)
                  else dict(eval_cfg))
        unknown = sorted(set(values) - set(CONFIG_KEYS) - set(SCHEDULE_KEYS))
        if unknown:
            raise ConfigError(f"unknown eval key(s) {', '.join(unknown)}; valid: "
                              f"{', '.join(CONFIG_KEYS + SCHEDULE_KEYS)}")
        return cls(datamodule, datamodule.dataset_name, num_classes=num_classes,
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
            names = []
            for name, (suite, _) in self.suites.items():
                names += [f"metrics/{n}" for n in suite.names()]
                if name in self.intra:
                    names.append(f"metrics/intra_fid{suite.suffix}")
                if name == "classifier" and self.num_classes is not None:
                    names.append("metrics/class_accuracy")
        if self.primary:
            names.append(self.primary.replace("metrics/", "metrics/best_"))
        return names

    def _features(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Suite ``name``'s features of ``images`` (the classifier's penultimate layer,
        Inception's pool), computed once for all classes; for a batch the suite was just given,
        its FID's pass is reused (MetricSuite shares one pass per batch)."""
        return self.suites[name][0].features(images)

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
        # One pass per batch serves FID, KID, IS and intra-class FID (MetricSuite); the reference
        # is read again only when it is cached but intra-class FID needs its per-class half.
        reference = not cached or "inception" in self.intra
        images = (f"{self.num_samples:,} generated + {self.num_samples:,} reference" if reference
                  else f"{self.num_samples:,} generated")
        n = self.num_samples * (2 if reference else 1)
        seconds = n / rate
        took = (f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"
                if seconds >= 90 else f"{seconds:.0f} s")
        return (f"{images} images through Inception at ~{rate:.1f} images/s on this CPU: about "
                f"{took}; eval.num_samples=<fewer> or eval.inception=false shortens it")

    # -- one evaluation -----------------------------------------------------------------------
    def _generated(self, generate: Generate, device: torch.device | str = "cpu"
                   ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``num_samples`` generated samples, in batches of at most ``batch_size``, with their
        labels (on ``device``) when the generator is conditional, else None."""
        for i in range(0, self.num_samples, self.batch_size):
            n = min(self.batch_size, self.num_samples - i)
            if self.num_classes is None:
                yield generate(n), None
            else:
                labels = balanced_labels(i, n, self.num_classes, device)
                yield generate(n, labels), labels

    @torch.no_grad()
    def evaluate(self, generate: Generate, device: torch.device) -> dict[str, float]:
        """Metrics of ``num_samples`` samples of ``generate``: ``generate(n)``, or for a
        conditional generator ``generate(n, labels)`` with balanced labels."""
        if self.points:
            samples = torch.cat([batch.cpu() for batch, _ in self._generated(generate, device)])
            return {f"metrics/{k}": v for k, v in
                    mode_metrics(samples, self.dm.modes, self.dm.std).items()}
        if not self.suites:
            return {}
        self.prepare_reference(device)
        for suite, _ in self.suites.values():
            suite.reset_fake()
        for intra in self.intra.values():
            intra.reset_fake()
        accuracy = self.num_classes is not None and "classifier" in self.suites
        correct = torch.zeros((), dtype=torch.long, device=device)
        with self._bar("generated samples") as bar:
            for fake, labels in self._generated(generate, device):
                fake = fake.to(device)
                for name, (suite, _) in self.suites.items():
                    suite.add_fake(fake)
                    if name in self.intra or (accuracy and name == "classifier"):
                        features = self._features(name, fake)  # once for every class
                        if name in self.intra:
                            self.intra[name].add_fake(features, labels)
                        if accuracy and name == "classifier":
                            predicted = suite.logits(fake).argmax(1)  # the shared pass's logits
                            correct += (predicted == labels).sum()
                bar.update(len(fake))
        out: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the rank warning is in the protocol
            for suite, _ in self.suites.values():
                out.update({f"metrics/{k}": v for k, v in suite.compute().items()})
        for name, intra in self.intra.items():  # warns once per Evaluator on too few per class
            out[f"metrics/intra_fid{self.suites[name][0].suffix}"] = intra.compute()
            self.protocol[name]["intra_fid"]["n_fake"] = intra.n_fake
        if accuracy:
            out["metrics/class_accuracy"] = int(correct) / self.num_samples
        return out
