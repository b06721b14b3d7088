"""Attribute classifier: a small Flax (Linen) CNN with softmax and/or sigmoid heads.

The outputs are grouped into heads. A softmax head holds mutually exclusive classes (MNIST's
`digit_0`..`digit_9`); a sigmoid head holds independent attributes in [0, 1] (CelebA's 40 binary
attributes, or the measured MNIST thickness / slant / width, trained on soft targets). Every output
is read as a probability p_a in [0, 1] by the evaluation protocol.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

HEAD_KINDS = ("softmax", "sigmoid")


@dataclasses.dataclass(frozen=True)
class Head:
    """A group of outputs sharing one activation: "softmax" (exclusive classes) or "sigmoid"."""

    kind: str
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"head kind must be one of {HEAD_KINDS}, got {self.kind!r}")
        if not self.names:
            raise ValueError("a head needs at least one attribute name")
        if self.kind == "softmax" and len(self.names) < 2:
            raise ValueError(f"a softmax head needs >= 2 classes, got {self.names}")


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Static description of a classifier (hashable, so it can be a jit static argument).

    Attributes:
      heads: output groups, concatenated in order.
      resolution: input side length the network was trained at.
      in_channels: 1 (grey) or 3 (RGB).
      widths: conv channels per stage; each stage after the first halves the resolution.
      convs_per_stage: 3x3 convs in each stage after the first (which has one).
      measured_quantiles: for MNIST, the [3, Q] training-set quantile tables of the raw
        thickness, slant and width (see `sparse_jax.attributes`); empty otherwise.
      dataset: free-form description of the training data.
    """

    heads: tuple[Head, ...]
    resolution: int = 32
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)
    convs_per_stage: int = 1
    measured_quantiles: tuple[tuple[float, ...], ...] = ()
    dataset: str = ""

    def __post_init__(self) -> None:
        if not self.heads:
            raise ValueError("a classifier needs at least one head")
        names = self.attribute_names
        if len(set(names)) != len(names):
            raise ValueError(f"attribute names must be unique, got {names}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if not self.widths:
            raise ValueError("widths must not be empty")
        if self.convs_per_stage < 1:
            raise ValueError(f"convs_per_stage must be >= 1, got {self.convs_per_stage}")
        if self.resolution % (2 ** (len(self.widths) - 1)):
            raise ValueError(
                f"resolution {self.resolution} must be divisible by 2**{len(self.widths) - 1} "
                f"for {len(self.widths)} stages")

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(n for h in self.heads for n in h.names)

    @property
    def head_types(self) -> tuple[str, ...]:
        """The head kind of each attribute, in output order."""
        return tuple(h.kind for h in self.heads for _ in h.names)

    @property
    def num_attributes(self) -> int:
        return len(self.attribute_names)

    def head_slices(self) -> tuple[tuple[Head, slice], ...]:
        out, start = [], 0
        for h in self.heads:
            out.append((h, slice(start, start + len(h.names))))
            start += len(h.names)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": [{"kind": h.kind, "names": list(h.names)} for h in self.heads],
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "widths": list(self.widths),
            "convs_per_stage": self.convs_per_stage,
            "measured_quantiles": [list(q) for q in self.measured_quantiles],
            "dataset": self.dataset,
            # Derived, for readers that do not use this class.
            "attribute_names": list(self.attribute_names),
            "head_types": list(self.head_types),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassifierConfig:
        try:
            heads = tuple(Head(h["kind"], tuple(h["names"])) for h in d["heads"])
            cfg = cls(
                heads=heads,
                resolution=int(d["resolution"]),
                in_channels=int(d["in_channels"]),
                widths=tuple(int(w) for w in d["widths"]),
                convs_per_stage=int(d.get("convs_per_stage", 1)),
                measured_quantiles=tuple(
                    tuple(float(v) for v in q) for q in d.get("measured_quantiles", ())),
                dataset=str(d.get("dataset", "")),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed classifier config: {e!r}") from e
        return cfg


class ClassifierNet(nn.Module):
    """VGG-style CNN: per stage (2x2 max-pool,) 3x3 conv(s) + ReLU; flatten; dense logits.

    Input x: float [N, H, W, C]; output: logits [N, num_outputs].
    """

    widths: tuple[int, ...]
    num_outputs: int
    convs_per_stage: int = 1

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for i, width in enumerate(self.widths):
            if i > 0:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for j in range(1 if i == 0 else self.convs_per_stage):
                x = nn.relu(nn.Conv(width, (3, 3), name=f"conv{i}_{j}")(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_outputs, name="head")(x)


def _net(cfg: ClassifierConfig) -> ClassifierNet:
    return ClassifierNet(widths=cfg.widths, num_outputs=cfg.num_attributes,
                         convs_per_stage=cfg.convs_per_stage)


def init_classifier(key: jax.Array, cfg: ClassifierConfig) -> dict[str, Any]:
    """Random parameters (the 'params' collection) for `cfg`."""
    x = jnp.zeros((1, cfg.resolution, cfg.resolution, cfg.in_channels), jnp.float32)
    return _net(cfg).init(key, x)["params"]


def prepare_inputs(cfg: ClassifierConfig, images: jnp.ndarray) -> jnp.ndarray:
    """Adapts images to the network: channels and resolution.

    Args:
      images: float [N, C, H, W] in [-1, 1], C in (1, 3), square.

    Returns:
      float32 [N, resolution, resolution, in_channels] (NHWC).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be [N, 1|3, S, S], got shape {images.shape}")
    x = jnp.transpose(jnp.asarray(images, jnp.float32), (0, 2, 3, 1))
    if x.shape[-1] == 3 and cfg.in_channels == 1:
        # Generator RGB -> grey by the channel mean, matching how grey data are replicated.
        x = jnp.mean(x, axis=-1, keepdims=True)
    elif x.shape[-1] == 1 and cfg.in_channels == 3:
        x = jnp.repeat(x, 3, axis=-1)
    if x.shape[1] != cfg.resolution:
        n, _, _, c = x.shape
        x = jax.image.resize(x, (n, cfg.resolution, cfg.resolution, c), method="linear",
                             antialias=True)
    return x


def logits_fn(cfg: ClassifierConfig, params: Any, images: jnp.ndarray) -> jnp.ndarray:
    """Raw logits [N, num_attributes] of images [N, C, H, W] in [-1, 1]."""
    return _net(cfg).apply({"params": params}, prepare_inputs(cfg, images))


def logits_to_probs(cfg: ClassifierConfig, logits: jnp.ndarray) -> jnp.ndarray:
    """Per-head softmax / sigmoid of logits [N, A] -> probabilities [N, A] in [0, 1]."""
    parts = []
    for head, sl in cfg.head_slices():
        z = logits[:, sl]
        parts.append(jax.nn.softmax(z, axis=-1) if head.kind == "softmax" else jax.nn.sigmoid(z))
    return jnp.concatenate(parts, axis=-1)


def predict_probs(cfg: ClassifierConfig, params: Any, images: jnp.ndarray) -> jnp.ndarray:
    """Attribute probabilities of images (e.g. generator outputs, taken directly).

    Args:
      cfg: classifier config (static under jit).
      params: the 'params' collection.
      images: float [N, C, H, W] in [-1, 1], C in (1, 3); resized bilinearly if H != resolution.

    Returns:
      float32 [N, num_attributes] in [0, 1], in the order of `cfg.attribute_names`.
    """
    return logits_to_probs(cfg, logits_fn(cfg, params, images))


def num_params(params: Any) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
