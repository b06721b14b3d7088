"""Training of the small embedded StyleGAN2 (generator + discriminator) on digit images."""
from sparse_jax.training.train_gan import (
    GanState,
    TrainConfig,
    ema_variables,
    export_generator,
    init_state,
    make_steps,
    restore_or_init,
    run_iterations,
    train,
)

__all__ = [
    "GanState",
    "TrainConfig",
    "ema_variables",
    "export_generator",
    "init_state",
    "make_steps",
    "restore_or_init",
    "run_iterations",
    "train",
]
