"""The reference side of an evaluation: the real images' statistics per metric suite, computed once
(one pass over the reference, labelled when intra-class FID needs the classes) and cached on disk
under a key of everything that defines them."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterator

import torch

from spectral_gan.data.batches import REFERENCE_SUBSET
from spectral_gan.errors import ConfigError


class ReferenceStatistics:
    """What ``Evaluator`` does with the reference data (its attributes: ``dm``, ``suites``,
    ``intra``, ``protocol``, ``num_samples``, ``batch_size``, ``reference_split``, ``cache_dir``)."""

    def _reference_batches(self) -> Iterator[torch.Tensor]:
        return self.dm.reference_images(self.reference_split, self.num_samples, self.batch_size)

    def _labeled_reference_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The images of ``_reference_batches`` with their labels (the data module's
        ``reference_labeled``), for the per-class reference of intra-class FID."""
        return self.dm.reference_labeled(self.reference_split, self.num_samples, self.batch_size)

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
        if todo or self.intra:
            # One pass over the reference: labelled when intra-class FID needs the classes (the
            # same images), feeding the suites whose statistics were not cached and the
            # per-class statistics (never cached: see _conditional_metrics).
            batches = (self._labeled_reference_batches() if self.intra else
                       ((images, None) for images in self._reference_batches()))
            for intra in self.intra.values():
                intra.to(device)
            with self._bar(f"reference statistics ({self.reference_split})") as bar:
                for batch, labels in batches:
                    batch = batch.to(device)
                    for suite in todo.values():
                        suite.add_real(batch)
                    for name, intra in self.intra.items():
                        intra.add_real(self._features(name, batch), labels.to(device))
                    bar.update(len(batch))
                bar.total = bar.n  # a data set smaller than num_samples ends the bar full
            for name, suite in todo.items():
                path = self._cache_path(name, identities.get(name, ""))
                if path:
                    suite.save_real(path, identities[name])
                    self.protocol[name]["reference_cache"] = path
        for name, (suite, _) in self.suites.items():
            self.protocol[name]["n_real"] = suite.n_real
        for name, intra in self.intra.items():
            self.protocol[name]["intra_fid"]["n_real"] = intra.n_real
            short = [c for c, n in enumerate(intra.n_real) if n < 2]
            if short:
                raise ConfigError(
                    f"intra-class FID needs at least 2 reference images per class, but class(es) "
                    f"{short} have fewer among the {self.num_samples} reference images of "
                    f"split {self.reference_split!r}; raise eval.num_samples or set "
                    f"eval.intra_fid=false")
        self._reference_ready = True
