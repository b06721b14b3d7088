"""The interactive explorer: a local page (127.0.0.1) with a slider per direction, live images,
the W distance moved and the attribute classifier's predictions as bars (`sparse-jax-explore`)."""
