"""Evaluation during and after training: FID/IS/KID (Inception or domain classifier) for images,
mode metrics for 2-D data, each value with the protocol it was measured under.

Knows data modules and metrics, nothing of Lightning: the LightningModule calls ``evaluate``.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Iterator

import torch

from spectral_gan.data.base import GANDataModule
from spectral_gan.errors import ConfigError
from spectral_gan.metrics.extractors import CLASSIFIER_DATASETS, classifier_suite, inception_suite
from spectral_gan.metrics.toy import mode_metrics

Generate = Callable[[int], torch.Tensor]


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
        self.dm, self.dataset = datamodule, dataset
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.reference_split, self.cache_dir = reference_split, cache_dir
        self.points = datamodule.kind == "points"
        self.suites: dict[str, Any] = {}
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

    @property
    def primary(self) -> str | None:
        """The metric that decides the best checkpoint (lower is better)."""
        if self.points:
            return "metrics/reverse_kl"
        if "inception" in self.suites:
            return "metrics/fid"
        if "classifier" in self.suites:
            return "metrics/fid_classifier"
        return None

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
        images = getattr(self.dm, "images", None)
        if images is not None:  # embedded data: all of it, up to num_samples
            yield from images[: self.num_samples].split(self.batch_size)
            return
        from torch.utils.data import DataLoader

        dm = self.dm
        if self.reference_split != getattr(dm, "split", self.reference_split):
            dm = type(dm)(name=dm.name, root=dm.root, split=self.reference_split,
                          image_size=dm.image_size, download=dm.download)
        dm.check_available()
        loader = DataLoader(dm._dataset_images(), batch_size=self.batch_size, shuffle=False)
        seen = 0
        for batch in loader:
            yield batch[: self.num_samples - seen]
            seen += len(batch)
            if seen >= self.num_samples:
                return

    def _cache_path(self, name: str) -> str | None:
        if not self.cache_dir:
            return None
        extractor = self.protocol[name]["extractor"]
        return os.path.join(self.cache_dir, "reference_stats",
                            f"{self.dataset}-{self.reference_split}-{extractor}-"
                            f"{self.protocol['image_size']}px-n{self.num_samples}.pt")

    def prepare_reference(self, device: torch.device) -> None:
        if self._reference_ready:
            return
        todo = {}
        for name, (suite, _) in self.suites.items():
            suite.to(device)
            path = self._cache_path(name)
            if path and suite.load_real(path):
                self.protocol[name]["reference_cache"] = path
            else:
                todo[name] = suite
        if todo:
            for batch in self._reference_batches():
                for suite in todo.values():
                    suite.add_real(batch.to(device))
            for name, suite in todo.items():
                path = self._cache_path(name)
                if path:
                    suite.save_real(path)
                    self.protocol[name]["reference_cache"] = path
        for name, (suite, _) in self.suites.items():
            self.protocol[name]["n_real"] = suite.n_real
        self._reference_ready = True

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
        for fake in self._generated(generate):
            for suite, _ in self.suites.values():
                suite.add_fake(fake.to(device))
        out: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the rank warning is in the protocol
            for suite, _ in self.suites.values():
                out.update({f"metrics/{k}": v for k, v in suite.compute().items()})
        return out
