"""The five commands, each a thin function over library calls (no command imports another):

- ``spectral-gan-train``   (``cli/train.py``): ``spectral_gan.training.run.train``
- ``spectral-gan-sample``  (``cli/sample.py``): ``spectral_gan.sampling.write_samples``
- ``spectral-gan-eval``    (``cli/eval.py``): ``spectral_gan.checkpoints.evaluate.evaluate_checkpoint``
- ``spectral-gan-fid``     (``cli/fid.py``): FID between two image folders
- ``spectral-gan-compare`` (``cli/compare.py``): ``spectral_gan.report``

``cli/common.py`` holds what they share: where the configs are, composing one without launching
it, turning a ConfigError into one line and exit status 2, and naming the extra to install when a
config needs a Hydra plugin that is missing.
"""
