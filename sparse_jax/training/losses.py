"""StyleGAN2 losses: non-saturating logistic G/D losses and the R1 gradient penalty."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def generator_loss(fake_logits: jax.Array) -> jax.Array:
    """Non-saturating G loss, mean softplus(-D(G(z))).

    Args:
      fake_logits: [N] discriminator logits of generated images.

    Returns:
      scalar.
    """
    return jnp.mean(jax.nn.softplus(-fake_logits))


def top_k_logits(fake_logits: jax.Array, fraction: float) -> jax.Array:
    """The `fraction` of generated samples the discriminator finds most realistic (top-k training).

    Sinha et al. 2020 ("Top-k Training of GANs"): the generator's gradient from the samples D
    rejects most points towards the average of the modes, which on a multi-modal dataset such as
    MNIST makes blends of two digits; dropping it keeps the pull towards the nearest mode.

    Args:
      fake_logits: [N] discriminator logits of generated samples (or packs of them).
      fraction: in (0, 1]; k = max(1, round(fraction * N)), static.

    Returns:
      [k] the largest logits (all of `fake_logits` when k == N).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"top-k fraction must be in (0, 1], got {fraction}")
    n = fake_logits.shape[0]
    k = max(1, int(round(fraction * n)))
    if k >= n:
        return fake_logits
    return jax.lax.top_k(fake_logits, k)[0]


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """Logistic D loss, mean softplus(D(G(z))) + mean softplus(-D(x)).

    Args:
      real_logits: [N] logits of real images.
      fake_logits: [M] logits of generated images.

    Returns:
      scalar.
    """
    return jnp.mean(jax.nn.softplus(fake_logits)) + jnp.mean(jax.nn.softplus(-real_logits))


def r1_penalty(logits_fn: Callable[[jax.Array], jax.Array], reals: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """Per-sample squared gradient norm of D at the real images (Mescheder et al. 2018).

    Args:
      logits_fn: images [N, C, H, W] -> logits [N]; per-sample except for minibatch-std coupling,
        which the official implementation also differentiates through.
      reals: [N, C, H, W] real images.

    Returns:
      (penalty [N] = |dD/dx|^2 per sample, logits [N]).
    """
    logits, vjp = jax.vjp(logits_fn, reals)
    (grad,) = vjp(jnp.ones_like(logits))
    return jnp.sum(jnp.square(grad), axis=(1, 2, 3)), logits
