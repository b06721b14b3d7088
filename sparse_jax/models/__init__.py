"""Flax (Linen) models: the StyleGAN2 generator, its discriminator, the attribute classifier."""
