"""sparse-jax: sparse, interpretable edit directions in StyleGAN latent spaces, in JAX.

Main entry points:
  sparse_jax.models.stylegan2   Flax StyleGAN2 generator (official numerics)
  sparse_jax.checkpoints        save_generator / load_generator / default_generator_path
  sparse_jax.decompose          pca, sefa, sca
  sparse_jax.features           sampled, max-pooled activations
  sparse_jax.discover           the discovery pipeline (bin/discover)
  sparse_jax.evaluate           walks, metrics and figures (bin/evaluate)
"""
from sparse_jax.checkpoints import default_generator_path, load_generator, save_generator

__version__ = "0.1.0"
__all__ = ["default_generator_path", "load_generator", "save_generator", "__version__"]
