"""Decompositions (arrays in, arrays out): SCA (epca-faithful), PCA (GANSpace), SeFa.

    from sparse_jax import decompose
    res = decompose.sca(x, k=20, target_sparsity=0.8, rotate_z=False)  # x [n, p]
    res.loadings [p, k]; res.scores [n, k]
    pc = decompose.pca(x, k=20)                 # pc.components [k, p]
    comps, eig = decompose.sefa_from_weights(weights, k=20)   # weights [m, w_dim] -> [k, w_dim]

See the module docstrings of `sca`, `pca` and `sefa` for the exact semantics.
"""
from sparse_jax.decompose.pca import PCAResult, pca
from sparse_jax.decompose.sca import (
    SCAResult,
    default_gamma,
    gamma_for_sparsity,
    sca,
    sca_fixed,
    sca_sweep,
)
from sparse_jax.decompose.sefa import sefa_from_weights

__all__ = [
    "PCAResult",
    "SCAResult",
    "default_gamma",
    "gamma_for_sparsity",
    "pca",
    "sca",
    "sca_fixed",
    "sca_sweep",
    "sefa_from_weights",
]
