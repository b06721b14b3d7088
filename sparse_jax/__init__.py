"""sparse-jax: sparse, interpretable edit directions in StyleGAN latent spaces, in JAX.

The package reads like the pipeline (docs/architecture.md draws the map):
  sparse_jax.core         atomic files, sharding, seeds, image arrays
  sparse_jax.data         image datasets (MNIST-like, CelebA) and measured attributes
  sparse_jax.models       generators behind one interface (`models.generators`), classifier, D
  sparse_jax.io           model directories (generators and classifiers, one format)
  sparse_jax.decompose    PCA, SCA, SeFa on arrays
  sparse_jax.discovery    features -> decomposition -> directions in W (bin/discover)
  sparse_jax.evaluation   walks, metrics, Table 1 (bin/evaluate, bin/render)
  sparse_jax.plots        every figure
  sparse_jax.generation   images from seeds, z or ws (bin/generate)
  sparse_jax.training     GAN and classifier training
  sparse_jax.pipeline     the paper end to end (bin/run_paper)
"""
from sparse_jax.io.model_dirs import (
    default_classifier_path,
    default_generator_path,
    load_classifier,
    load_generator,
    save_generator,
)

__version__ = "0.1.0"
__all__ = ["default_classifier_path", "default_generator_path", "load_classifier",
           "load_generator", "save_generator", "__version__"]
