"""Training and evaluation of the attribute classifier (used by `bin/train_classifier.py`).

Data: a CelebA-format folder (binary attributes, sigmoid head) or MNIST-like digits (npz, IDX
folder or `sklearn_digits`): a softmax head over `digit_0`..`digit_9` plus a sigmoid head on the
label-free measured thickness / slant / width (soft targets in [0, 1], see `sparse_jax.attributes`).
"""
from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from sparse_jax.core import sharding
from sparse_jax.data import attributes, celeba, loaders
from sparse_jax.io import model_dirs
from sparse_jax.models import classifier as clf


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_shift: int = 2  # random translation augmentation, in pixels
    seed: int = 0


@dataclasses.dataclass
class Dataset:
    """Model-ready images stored as uint8 NCHW (x / 127.5 - 1 gives the [-1, 1] input)."""

    images: np.ndarray  # uint8 [N, C, R, R]
    targets: np.ndarray  # float32 [N, A], NaN = missing


def mnist_config(measured_quantiles: Sequence[Sequence[float]] = (), resolution: int = 32,
                 widths: tuple[int, ...] = (16, 32, 64, 128), convs_per_stage: int = 1,
                 dataset: str = "") -> clf.ClassifierConfig:
    """The MNIST layout: softmax over digit_0..digit_9, then sigmoid thickness/slant/width."""
    heads = [clf.Head("softmax", tuple(f"digit_{i}" for i in range(10)))]
    if len(measured_quantiles):
        heads.append(clf.Head("sigmoid", attributes.MEASURED))
    return clf.ClassifierConfig(
        heads=tuple(heads), resolution=resolution, in_channels=1, widths=widths,
        convs_per_stage=convs_per_stage,
        measured_quantiles=tuple(tuple(float(v) for v in q) for q in measured_quantiles),
        dataset=dataset)


def loss_fn(cfg: clf.ClassifierConfig, params: Any, images: jnp.ndarray,
            targets: jnp.ndarray) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Training loss: cross-entropy per softmax head + binary cross-entropy per sigmoid output.

    Args:
      images: float [N, C, H, W] in [-1, 1].
      targets: float [N, A] in [0, 1] (softmax heads: a distribution, e.g. one-hot; sigmoid heads:
        hard or soft targets); NaN marks a missing label, which is left out of the loss.

    Returns:
      (scalar loss, {head index as "head{i}": that head's mean loss}).
    """
    logits = clf.logits_fn(cfg, params, images)
    total = jnp.zeros((), jnp.float32)
    parts = {}
    for i, (head, sl) in enumerate(cfg.head_slices()):
        z, t = logits[:, sl], targets[:, sl]
        if head.kind == "softmax":
            valid = jnp.all(jnp.isfinite(t), axis=-1)
            t = jnp.where(valid[:, None], t, 0.0)
            per = -jnp.sum(t * jax.nn.log_softmax(z, axis=-1), axis=-1)
        else:
            valid = jnp.isfinite(t)
            t = jnp.where(valid, t, 0.0)
            per = optax.sigmoid_binary_cross_entropy(z, t)
        w = valid.astype(jnp.float32)
        head_loss = jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)
        parts[f"head{i}"] = head_loss
        total = total + head_loss
    return total, parts


def quantize(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> uint8 (exact for images that came from uint8 without resampling)."""
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def dequantize(x: jnp.ndarray) -> jnp.ndarray:
    """uint8 -> float32 [-1, 1]."""
    return x.astype(jnp.float32) / 127.5 - 1.0


def digit_targets(labels: np.ndarray) -> np.ndarray:
    """int [N] -> one-hot float32 [N, 10]; rows of unlabeled (-1) images are NaN."""
    onehot = np.zeros((len(labels), 10), np.float32)
    valid = (labels >= 0) & (labels < 10)
    onehot[np.flatnonzero(valid), labels[valid]] = 1.0
    onehot[~valid] = np.nan
    return onehot


def _measure_batched(images: np.ndarray, batch: int = 4096) -> np.ndarray:
    measure = jax.jit(lambda x: attributes.measure(attributes.ink_from_model_images(
        dequantize(x))))
    out = [np.asarray(measure(jax.device_put(images[i:i + batch])))
           for i in range(0, len(images), batch)]
    return np.concatenate(out, axis=0)


def prepare_data(spec: str, resolution: int = 32, limit: int | None = None,
                 measured: bool = True, widths: tuple[int, ...] = (16, 32, 64, 128),
                 convs_per_stage: int = 1) -> tuple[clf.ClassifierConfig, Dataset, Dataset]:
    """Loads a data set and builds the classifier config and targets.

    Args:
      spec: a CelebA-format folder, or anything `loaders.load_images` accepts.
      resolution: network input side length.
      limit: keep at most this many images per split.
      measured: digits only; also predict the measured thickness / slant / width.
      widths: conv channels per stage.
      convs_per_stage: 3x3 convs per stage after the first.

    Returns:
      (cfg, train set, test set).
    """
    if celeba.is_celeba_folder(spec):
        tr_x, tr_t, names = celeba.load_celeba(spec, "train", limit)
        te_x, te_t, _ = celeba.load_celeba(spec, "test", limit)
        cfg = clf.ClassifierConfig(
            heads=(clf.Head("sigmoid", tuple(names)),), resolution=resolution, in_channels=3,
            widths=widths, convs_per_stage=convs_per_stage, dataset=f"celeba-format:{spec}")
        train = Dataset(quantize(loaders.to_model_images(tr_x, resolution, channels=3)), tr_t)
        test = Dataset(quantize(loaders.to_model_images(te_x, resolution, channels=3)), te_t)
        return cfg, train, test
    tr_x, tr_y = loaders.load_images(spec, "train")
    te_x, te_y = loaders.load_images(spec, "test")
    if limit is not None:
        tr_x, tr_y, te_x, te_y = tr_x[:limit], tr_y[:limit], te_x[:limit], te_y[:limit]
    train_images = quantize(loaders.to_model_images(tr_x, resolution, channels=1))
    test_images = quantize(loaders.to_model_images(te_x, resolution, channels=1))
    tr_t, te_t = digit_targets(tr_y), digit_targets(te_y)
    tables: np.ndarray | tuple = ()
    if measured:
        tr_raw = _measure_batched(train_images)
        tables = attributes.fit_quantiles(tr_raw)
        tr_m = np.asarray(attributes.to_unit(tr_raw, tables))
        te_m = np.asarray(attributes.to_unit(_measure_batched(test_images), tables))
        tr_t = np.concatenate([tr_t, tr_m], axis=1)
        te_t = np.concatenate([te_t, te_m], axis=1)
    cfg = mnist_config(tables, resolution=resolution, widths=widths,
                           convs_per_stage=convs_per_stage, dataset=f"digits:{spec}")
    return cfg, Dataset(train_images, tr_t), Dataset(test_images, te_t)


def random_shift(key: jax.Array, x: jnp.ndarray, max_shift: int) -> jnp.ndarray:
    """Translates each image by an integer offset in [-max_shift, max_shift]^2, filling with -1.

    Args:
      x: float [N, C, H, W].

    Returns:
      float [N, C, H, W].
    """
    if max_shift == 0:
        return x
    n, c, h, w = x.shape
    m = max_shift
    padded = jnp.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), constant_values=-1.0)
    offsets = jax.random.randint(key, (n, 2), 0, 2 * m + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (0, o[0], o[1]), (c, h, w))
    return jax.vmap(crop)(padded, offsets)


def make_optimizer(tcfg: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, tcfg.learning_rate, warmup_steps=max(1, min(200, total_steps // 10)),
        decay_steps=max(2, total_steps))
    return optax.adamw(schedule, weight_decay=tcfg.weight_decay)


def _train_step(cfg, tx, max_shift, params, opt_state, images, targets, key):
    x = random_shift(key, dequantize(images), max_shift)
    (loss, parts), grads = jax.value_and_grad(loss_fn, argnums=1, has_aux=True)(
        cfg, params, x, targets)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, parts


def train(cfg: clf.ClassifierConfig, tcfg: TrainConfig, train_set: Dataset,
          progress: bool = True) -> tuple[Any, list[float]]:
    """Trains from scratch with AdamW + warmup-cosine and random-shift augmentation.

    Returns:
      (params, mean training loss per epoch).
    """
    n = len(train_set.images)
    if n == 0:
        raise ValueError("empty training set")
    batch = min(tcfg.batch_size, n)
    steps_per_epoch = n // batch  # the ragged tail is dropped to keep one compiled shape
    total = steps_per_epoch * tcfg.epochs
    key = jax.random.key(tcfg.seed)
    init_key, perm_key, aug_key = jax.random.split(key, 3)
    params = clf.init_classifier(init_key, cfg)
    tx = make_optimizer(tcfg, total)
    opt_state = tx.init(params)
    step_fn = jax.jit(functools.partial(_train_step, cfg, tx, tcfg.max_shift),
                      donate_argnums=(0, 1))
    history = []
    step = 0
    for epoch in range(tcfg.epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(perm_key, epoch), n))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{tcfg.epochs}",
                   disable=not progress, file=sys.stderr, leave=True)
        for i in bar:
            idx = np.sort(order[i * batch:(i + 1) * batch])
            xb = jax.device_put(train_set.images[idx])
            tb = jax.device_put(train_set.targets[idx])
            params, opt_state, loss, _ = step_fn(
                params, opt_state, xb, tb, jax.random.fold_in(aug_key, step))
            losses.append(loss)
            step += 1
            if i % 50 == 0 or i == steps_per_epoch - 1:
                bar.set_postfix(loss=f"{float(loss):.4f}")
        history.append(float(np.mean(jax.device_get(losses))))
    return params, history


def predict_dataset(cfg: clf.ClassifierConfig, params: Any, images: np.ndarray,
                    batch: int = 1000) -> np.ndarray:
    """Probabilities [N, A] of uint8 NCHW model images.

    Every call of the jitted function has min(batch, N) rows (the last batch padded by repeating
    its last image, the extra rows dropped), so a dataset compiles once; `params` is an argument.
    """
    n = len(images)
    if n == 0:
        raise ValueError("predict_dataset: no images")
    size = min(int(batch), n)
    fn = _predict_fn(cfg)
    params = jax.device_put(params)
    out = []
    for i in range(0, n, size):
        chunk, m = sharding.pad_batch(np.asarray(images[i:i + size]), size)
        out.append(np.asarray(jax.device_get(fn(params, jax.device_put(chunk))))[:m])
    return np.concatenate(out, axis=0)


def _make_predict(cfg: clf.ClassifierConfig):
    """predict(params, uint8 images [B, C, H, W]) -> probabilities [B, A]."""

    def predict(params, images):
        return clf.predict_probs(cfg, params, dequantize(images))

    return predict


@functools.lru_cache(maxsize=8)
def _predict_fn(cfg: clf.ClassifierConfig):
    return jax.jit(_make_predict(cfg))


def evaluate(cfg: clf.ClassifierConfig, params: Any, test_set: Dataset) -> dict[str, Any]:
    """Held-out metrics.

    Softmax heads: top-1 accuracy of the head, and per class the accuracy on that class's images.
    Sigmoid heads: per attribute, accuracy of p >= 0.5 against target >= 0.5; for soft targets
    also the mean absolute error and the Pearson correlation of p with the target.
    """
    probs = predict_dataset(cfg, params, test_set.images)
    t = test_set.targets
    out: dict[str, Any] = {"num_test": int(len(t)), "heads": [], "attributes": {}}
    for head, sl in cfg.head_slices():
        p, tt = probs[:, sl], t[:, sl]
        if head.kind == "softmax":
            valid = np.all(np.isfinite(tt), axis=1)
            pred, true = p[valid].argmax(1), tt[valid].argmax(1)
            out["heads"].append({"kind": head.kind, "names": list(head.names),
                                 "accuracy": float(np.mean(pred == true))})
            for k, name in enumerate(head.names):
                sel = true == k
                out["attributes"][name] = {
                    "accuracy": float(np.mean(pred[sel] == k)) if sel.any() else float("nan"),
                    "count": int(sel.sum())}
        else:
            out["heads"].append({"kind": head.kind, "names": list(head.names)})
            for k, name in enumerate(head.names):
                valid = np.isfinite(tt[:, k])
                pk, tk = p[valid, k], tt[valid, k]
                m = {"accuracy": float(np.mean((pk >= 0.5) == (tk >= 0.5))),
                     "count": int(valid.sum())}
                soft = np.any((tk > 0) & (tk < 1))
                if soft:
                    m["mae"] = float(np.mean(np.abs(pk - tk)))
                    m["pearson"] = float(np.corrcoef(pk, tk)[0, 1])
                out["attributes"][name] = m
    return out


def format_metrics(metrics: dict[str, Any]) -> str:
    """Markdown table of per-attribute metrics."""
    lines = [f"held-out images: {metrics['num_test']}"]
    for h in metrics["heads"]:
        if "accuracy" in h:
            lines.append(f"{h['kind']} head accuracy: {h['accuracy']:.4f}")
    lines += ["", "| attribute | accuracy | MAE | Pearson r | count |", "|---|---|---|---|---|"]
    for name, m in metrics["attributes"].items():
        mae = f"{m['mae']:.4f}" if "mae" in m else "-"
        r = f"{m['pearson']:.4f}" if "pearson" in m else "-"
        lines.append(f"| {name} | {m['accuracy']:.4f} | {mae} | {r} | {m['count']} |")
    return "\n".join(lines)


def train_and_save(spec: str, out: str, tcfg: TrainConfig, resolution: int = 32,
                   limit: int | None = None, measured: bool = True,
                   widths: tuple[int, ...] = (16, 32, 64, 128), convs_per_stage: int = 1,
                   progress: bool = True) -> dict[str, Any]:
    """Loads data, trains, evaluates on the held-out split, saves to `out`, prints the metrics."""
    cfg, train_set, test_set = prepare_data(spec, resolution, limit, measured, widths,
                                            convs_per_stage)
    print(f"{len(train_set.images)} training / {len(test_set.images)} test images; "
          f"attributes: {', '.join(cfg.attribute_names)}")
    params, history = train(cfg, tcfg, train_set, progress=progress)
    metrics = evaluate(cfg, params, test_set)
    metrics["train_loss_per_epoch"] = history
    metrics["train_config"] = dataclasses.asdict(tcfg)
    metrics["num_params"] = clf.num_params(params)
    model_dirs.save_classifier(out, cfg, params, metrics)
    print(format_metrics(metrics))
    print(f"saved to {out}")
    return metrics
