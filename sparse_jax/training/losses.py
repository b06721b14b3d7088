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
