"""spectral-gan: GAN training for studying discriminator normalization."""
from spectral_gan.config import resolvers  # noqa: F401  (registers ${mul:...}, ${pid:})

__version__ = "0.1.0"
