"""StyleGAN2 training (stylegan2-ada-pytorch semantics, simplified): state, jitted steps, loop.

One iteration = a G step, a D step and, every `d_reg_interval` iterations, a lazy R1 step, each on
its own minibatch, as in the official training loop. Differences from the official recipe, chosen
for a small CPU run: no path-length regulariser, no augmentation, real minibatches are drawn with
replacement, and w_avg is updated in the G step only. Two additions: `TrainConfig.pack` > 1 makes
the discriminator a PacGAN one (it sees `pack` samples stacked as channels); without it the small
MNIST generator collapsed to a single digit at every learning rate tried. `TrainConfig.g_topk` < 1
is top-k training (Sinha et al. 2020): the G loss keeps only the fakes D rates most realistic.

Randomness: `jax.random.key(seed)` is split into init / loop / sample keys; every step derives its
keys with `fold_in(loop_key, step)`, so a run resumed from a checkpoint continues exactly as an
uninterrupted one would.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sparse_jax.core import atomic as io_lib
from sparse_jax.core import images as images_lib
from sparse_jax.data import loaders as data_lib
from sparse_jax.models import discriminator as disc
from sparse_jax.models import stylegan2 as sg
from sparse_jax.training import losses

_CONFIG_FILE = "train_config.json"
_PROGRESS_FILE = "progress.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyper-parameters (static). The defaults are the shipped MNIST generator's
    recipe (sparse_jax/assets/generator_mnist/README.md); the training flags derive from them."""

    batch: int = 32
    g_lr: float = 0.0025
    d_lr: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    adam_eps: float = 1e-8
    r1_gamma: float = 0.01  # StyleGAN2-ADA's automatic value for 32x32, batch 32
    d_reg_interval: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    style_mixing_prob: float = 0.0
    w_avg_beta: float = 0.995
    pack: int = 4  # PacGAN-4: with 1 the small MNIST generator collapsed to one digit
    g_topk: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.d_reg_interval < 1:
            raise ValueError(f"d_reg_interval must be >= 1, got {self.d_reg_interval}")
        if self.pack < 1 or self.batch % self.pack:
            raise ValueError(f"pack must be >= 1 and divide batch ({self.batch}), got {self.pack}")
        if not 0.0 < self.g_topk <= 1.0:
            raise ValueError(f"g_topk must be in (0, 1], got {self.g_topk}")
        if not 0.0 <= self.style_mixing_prob <= 1.0:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {self.style_mixing_prob}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@flax.struct.dataclass
class GanState:
    """Everything a checkpoint holds. `step` counts iterations (G step + D step [+ R1 step])."""

    step: jax.Array  # int32 []
    g_params: Any
    g_buffers: Any  # w_avg (trained as an EMA of w) and the fixed noise_const buffers
    ema_params: Any
    d_params: Any
    g_opt: Any
    d_opt: Any


def _optimizers(tcfg: TrainConfig) -> tuple[optax.GradientTransformation,
                                             optax.GradientTransformation]:
    g_opt = optax.adam(tcfg.g_lr, b1=tcfg.beta1, b2=tcfg.beta2, eps=tcfg.adam_eps)
    # Lazy regularisation: D takes interval/(interval+1) as many effective steps per update, so the
    # official code rescales its lr and betas by that ratio.
    ratio = tcfg.d_reg_interval / (tcfg.d_reg_interval + 1)
    d_opt = optax.adam(tcfg.d_lr * ratio, b1=tcfg.beta1 ** ratio, b2=tcfg.beta2 ** ratio,
                       eps=tcfg.adam_eps)
    return g_opt, d_opt


def init_state(key: jax.Array, gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig,
               tcfg: TrainConfig) -> GanState:
    """Fresh state: official inits, EMA generator = G, Adam moments 0."""
    k_g, k_d = jax.random.split(key)
    g_vars = sg.init_generator(k_g, gcfg)
    d_params = disc.init_discriminator(k_d, dcfg)
    g_opt, d_opt = _optimizers(tcfg)
    return GanState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_vars["params"],
        g_buffers=g_vars["buffers"],
        ema_params=jax.tree_util.tree_map(jnp.copy, g_vars["params"]),
        d_params=d_params,
        g_opt=g_opt.init(g_vars["params"]),
        d_opt=d_opt.init(d_params),
    )


def ema_variables(state: GanState) -> dict[str, Any]:
    """The EMA generator's variables {'params', 'buffers'}; buffers are shared with G (official)."""
    return {"params": state.ema_params, "buffers": state.g_buffers}


def _step_keys(loop_key: jax.Array, step: jax.Array, phase: int, n: int) -> jax.Array:
    return jax.random.split(jax.random.fold_in(jax.random.fold_in(loop_key, step), phase), n)


def _sample_ws(gcfg: sg.GeneratorConfig, tcfg: TrainConfig, variables: Any, key: jax.Array,
               n: int) -> tuple[jax.Array, jax.Array]:
    """z -> ws with style mixing (one cutoff per minibatch). Returns (ws, w of the first z)."""
    k_z1, k_z2, k_cut, k_mix = jax.random.split(key, 4)
    z = jax.random.normal(k_z1, (n, gcfg.z_dim))
    ws = sg.map_latents(gcfg, variables, z)
    w_first = ws[:, 0]
    if tcfg.style_mixing_prob > 0 and gcfg.num_ws > 1:
        cutoff = jax.random.randint(k_cut, (), 1, gcfg.num_ws)
        cutoff = jnp.where(jax.random.uniform(k_mix) < tcfg.style_mixing_prob, cutoff, gcfg.num_ws)
        ws2 = sg.map_latents(gcfg, variables, jax.random.normal(k_z2, (n, gcfg.z_dim)))
        ws = jnp.where((jnp.arange(gcfg.num_ws) < cutoff)[None, :, None], ws, ws2)
    return ws, w_first


def pack_images(images: jax.Array, pack: int) -> jax.Array:
    """PacGAN packing: [N, C, H, W] -> [N / pack, pack * C, H, W] (consecutive samples together).

    The discriminator then judges `pack` samples at once, so a generator that repeats itself is
    easy to spot (on MNIST, pack 4 removed the single-digit collapse of plain runs).
    """
    if pack == 1:
        return images
    n, c, h, w = images.shape
    return images.reshape(n // pack, pack * c, h, w)


def _discriminate(dcfg: disc.DiscriminatorConfig, tcfg: TrainConfig, d_params: Any,
                  images: jax.Array, conv_impl: str) -> jax.Array:
    return disc.discriminate(dcfg, d_params, pack_images(images, tcfg.pack), conv_impl)


def _sample_reals(images: jax.Array, key: jax.Array, n: int) -> jax.Array:
    idx = jax.random.randint(key, (n,), 0, images.shape[0])
    return jnp.take(images, idx, axis=0)


def g_step(gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig, tcfg: TrainConfig,
           conv_impl: str, state: GanState, loop_key: jax.Array
           ) -> tuple[GanState, dict[str, jax.Array]]:
    """Generator update (non-saturating loss), w_avg EMA, then the EMA-generator update."""
    g_opt, _ = _optimizers(tcfg)
    k_ws, k_noise = _step_keys(loop_key, state.step, 0, 2)

    def loss_fn(g_params):
        variables = {"params": g_params, "buffers": state.g_buffers}
        ws, w_first = _sample_ws(gcfg, tcfg, variables, k_ws, tcfg.batch)
        fakes = sg.synthesize(gcfg, variables, ws, noise_mode="random", key=k_noise,
                              conv_impl=conv_impl)
        logits = _discriminate(dcfg, tcfg, state.d_params, fakes, conv_impl)
        return (losses.generator_loss(losses.top_k_logits(logits, tcfg.g_topk)),
                (w_first, logits))

    (loss, (w_first, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = g_opt.update(grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)

    w_mean = jnp.mean(jax.lax.stop_gradient(w_first), axis=0)
    buffers = flax.core.unfreeze(state.g_buffers)
    w_avg = buffers["mapping"]["w_avg"]
    buffers["mapping"]["w_avg"] = w_mean + tcfg.w_avg_beta * (w_avg - w_mean)

    nimg = state.step.astype(jnp.float32) * tcfg.batch
    ema_nimg = jnp.float32(tcfg.ema_kimg * 1000)
    if tcfg.ema_rampup is not None:
        ema_nimg = jnp.minimum(ema_nimg, nimg * tcfg.ema_rampup)
    beta = 0.5 ** (tcfg.batch / jnp.maximum(ema_nimg, 1e-8))
    ema_params = jax.tree_util.tree_map(lambda e, p: p + beta * (e - p), state.ema_params, g_params)

    new = state.replace(g_params=g_params, g_buffers=buffers, ema_params=ema_params,
                        g_opt=g_opt_state)
    return new, {"g_loss": loss, "fake_logit_g": jnp.mean(logits)}


def d_step(gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig, tcfg: TrainConfig,
           conv_impl: str, state: GanState, images: jax.Array, loop_key: jax.Array
           ) -> tuple[GanState, dict[str, jax.Array]]:
    """Discriminator update on one fake and one real minibatch; increments `step`."""
    _, d_opt = _optimizers(tcfg)
    k_ws, k_noise, k_real = _step_keys(loop_key, state.step, 1, 3)
    variables = {"params": state.g_params, "buffers": state.g_buffers}
    ws, _ = _sample_ws(gcfg, tcfg, variables, k_ws, tcfg.batch)
    fakes = jax.lax.stop_gradient(
        sg.synthesize(gcfg, variables, ws, noise_mode="random", key=k_noise,
                      conv_impl=conv_impl))
    reals = _sample_reals(images, k_real, tcfg.batch)

    def loss_fn(d_params):
        fake_logits = _discriminate(dcfg, tcfg, d_params, fakes, conv_impl)
        real_logits = _discriminate(dcfg, tcfg, d_params, reals, conv_impl)
        return losses.discriminator_loss(real_logits, fake_logits), (real_logits, fake_logits)

    (loss, (real_l, fake_l)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = d_opt.update(grads, state.d_opt, state.d_params)
    new = state.replace(d_params=optax.apply_updates(state.d_params, updates), d_opt=d_opt_state,
                        step=state.step + 1)
    return new, {"d_loss": loss, "real_logit": jnp.mean(real_l), "fake_logit": jnp.mean(fake_l)}


def d_reg_step(dcfg: disc.DiscriminatorConfig, tcfg: TrainConfig, conv_impl: str,
               state: GanState, images: jax.Array, loop_key: jax.Array
               ) -> tuple[GanState, dict[str, jax.Array]]:
    """Lazy R1: gamma/2 * |dD/dx|^2 on reals, scaled by the interval (official Dreg phase)."""
    _, d_opt = _optimizers(tcfg)
    (k_real,) = _step_keys(loop_key, state.step, 2, 1)
    reals = _sample_reals(images, k_real, tcfg.batch)

    def loss_fn(d_params):
        r1, _ = losses.r1_penalty(lambda x: _discriminate(dcfg, tcfg, d_params, x, conv_impl),
                                  reals)
        return jnp.mean(r1) * (tcfg.r1_gamma / 2) * tcfg.d_reg_interval, jnp.mean(r1)

    (_, r1), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.d_params)
    updates, d_opt_state = d_opt.update(grads, state.d_opt, state.d_params)
    new = state.replace(d_params=optax.apply_updates(state.d_params, updates), d_opt=d_opt_state)
    return new, {"r1": r1}


@dataclasses.dataclass(frozen=True)
class Steps:
    """The three jitted step functions (state donated) and the sampler for grids."""

    g: Callable[..., Any]
    d: Callable[..., Any]
    d_reg: Callable[..., Any]
    sample: Callable[..., Any]


def default_conv_impl() -> str:
    """'matmul' (im2col) on CPU, where the small models train several times faster; else 'xla'."""
    return "matmul" if jax.default_backend() == "cpu" else "xla"


@functools.lru_cache(maxsize=4)
def make_steps(gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig,
               tcfg: TrainConfig, conv_impl: str | None = None) -> Steps:
    """One `jax.jit` per step type; the state argument is donated.

    `conv_impl` (see `sparse_jax.models.conv_ops`) picks the convolution code of the training
    steps; None means `default_conv_impl()`. Both give the same function up to float rounding.
    """
    conv_impl = conv_impl or default_conv_impl()

    def sample(state, z):
        return sg.generate(gcfg, ema_variables(state), z, noise_mode="const")

    return Steps(
        g=jax.jit(functools.partial(g_step, gcfg, dcfg, tcfg, conv_impl), donate_argnums=0),
        d=jax.jit(functools.partial(d_step, gcfg, dcfg, tcfg, conv_impl), donate_argnums=0),
        d_reg=jax.jit(functools.partial(d_reg_step, dcfg, tcfg, conv_impl), donate_argnums=0),
        sample=jax.jit(sample),
    )


def run_iterations(steps: Steps, tcfg: TrainConfig, state: GanState, images: jax.Array,
                   loop_key: jax.Array, num: int) -> tuple[GanState, list[dict[str, jax.Array]]]:
    """Runs `num` iterations from `state` (no I/O). Returns the new state and per-step metrics."""
    metrics = []
    step = int(state.step)
    for _ in range(num):
        state, m_g = steps.g(state, loop_key)
        state, m_d = steps.d(state, images, loop_key)
        m = {**m_g, **m_d}
        if step % tcfg.d_reg_interval == 0:
            state, m_r = steps.d_reg(state, images, loop_key)
            m.update(m_r)
        metrics.append(m)
        step += 1
    return state, metrics


# ----------------------------------------------------------------------------- data, I/O, loop


def load_training_images(spec: str, resolution: int, channels: int) -> np.ndarray:
    """Training split of `spec` (npz, IDX folder, 'sklearn_digits') as float32 [N,C,R,R], [-1,1]."""
    images, _ = data_lib.load_images(spec, "train")
    return data_lib.to_model_images(images, resolution=resolution, channels=channels)


def _checkpoint_manager(workdir: str, max_to_keep: int = 2):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options)


def restore_or_init(workdir: str, gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig,
                    tcfg: TrainConfig, mngr: Any = None) -> GanState:
    """Latest checkpoint in `workdir` (restored against the abstract state), else a new state."""
    import orbax.checkpoint as ocp

    mngr = mngr or _checkpoint_manager(workdir)
    init_key = jax.random.fold_in(jax.random.key(tcfg.seed), 0)
    latest = mngr.latest_step()
    if latest is None:
        return init_state(init_key, gcfg, dcfg, tcfg)
    abstract = jax.eval_shape(functools.partial(init_state, gcfg=gcfg, dcfg=dcfg, tcfg=tcfg),
                              init_key)
    return mngr.restore(latest, args=ocp.args.StandardRestore(abstract))


def restore_from_run(workdir: str, gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig,
                     tcfg: TrainConfig) -> GanState:
    """The latest state of the run in `workdir`, which must have the same G and D configs.

    Raises:
      FileNotFoundError: `workdir` has no train_config.json or no checkpoint.
      ValueError: its networks differ from `gcfg` / `dcfg`.
    """
    path = os.path.join(workdir, _CONFIG_FILE)
    stored = _stored_config(workdir)
    if stored is None:
        raise FileNotFoundError(f"{path}: not found; --init_from must name a training workdir")
    asked = _as_json({"generator": gcfg.to_dict(), "discriminator": dcfg.to_dict()})
    for part in ("generator", "discriminator"):
        if stored.get(part) != asked[part]:
            raise ValueError(
                f"{path}: its {part} differs from this run's; --init_from needs the same "
                f"networks.\n  stored: {stored.get(part)}\n  asked:  {asked[part]}")
    mngr = _checkpoint_manager(workdir)
    if mngr.latest_step() is None:
        raise FileNotFoundError(
            f"{os.path.join(workdir, 'checkpoints')}: no checkpoint to start from")
    state = restore_or_init(workdir, gcfg, dcfg, tcfg, mngr)
    # The image count (step * batch) drives kimg, --total_kimg and the EMA ramp-up, so a run
    # with another batch size continues from the same number of images, not the same step.
    old_batch = int(stored.get("train", {}).get("batch", tcfg.batch))
    if old_batch != tcfg.batch:
        step = round(int(state.step) * old_batch / tcfg.batch)
        state = state.replace(step=jnp.asarray(step, state.step.dtype))
    return state


def save_checkpoint(mngr: Any, state: GanState) -> None:
    import orbax.checkpoint as ocp

    mngr.save(int(state.step), args=ocp.args.StandardSave(state), force=True)
    mngr.wait_until_finished()


def _as_json(config: dict[str, Any]) -> Any:
    """`config` as it reads back from JSON (tuples become lists), to compare with a stored one."""
    return json.loads(json.dumps(config))


def _stored_config(workdir: str) -> dict[str, Any] | None:
    path = os.path.join(workdir, _CONFIG_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _with_new_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """`stored` with training options added since it was written filled in at their defaults.

    A workdir written before an option existed was trained with the option's default, so it
    still resumes under a command that leaves the option alone.
    """
    train = stored.get("train")
    if not isinstance(train, dict):
        return stored
    defaults = _as_json(TrainConfig().to_dict())
    return {**stored, "train": {**{k: v for k, v in defaults.items() if k not in train}, **train}}


def _check_or_write_config(workdir: str, config: dict[str, Any]) -> None:
    path = os.path.join(workdir, _CONFIG_FILE)
    old = _stored_config(workdir)
    if old is None:
        io_lib.write_json(path, config)
    elif _with_new_defaults(old) != _as_json(config):
        raise ValueError(
            f"{path}: workdir holds a run with a different configuration; use a new "
            f"--workdir.\n"
            f"  stored: {old}\n  asked:  {config}")


def train(gcfg: sg.GeneratorConfig, dcfg: disc.DiscriminatorConfig, tcfg: TrainConfig, *,
          data: str, workdir: str, total_kimg: float, minutes: float | None = None,
          checkpoint_minutes: float = 5.0, sample_every: int = 500, log_every: int = 100,
          export_dir: str | None = None, init_from: str | None = None,
          log: Callable[[str], None] = print) -> GanState:
    """Trains (or resumes) a StyleGAN2 until `total_kimg` thousand images or `minutes` of wall time.

    Args:
      gcfg, dcfg, tcfg: generator, discriminator and optimisation configs.
      data: training data spec (see `sparse_jax.data.load_images`).
      workdir: checkpoints (Orbax, latest 2 kept), train_config.json, progress.json, samples/*.png.
      total_kimg: stop once step * batch >= total_kimg * 1000.
      minutes: also stop after this many minutes of this invocation (None: no limit).
      checkpoint_minutes: wall-clock interval between checkpoints.
      sample_every: iterations between sample grids (EMA generator, fixed z, const noise).
      log_every: iterations between log lines.
      export_dir: if set, the EMA generator is written there with `save_generator` at the end.
      init_from: another run's workdir with the same generator and discriminator; a workdir
        without a checkpoint starts from that run's latest state (weights, EMA, Adam moments and
        step) instead of a fresh one, so a run can continue with other optimisation settings
        (for example a lower learning rate). With another batch size the step is rescaled so
        that the image count carries over. Ignored once `workdir` has its own checkpoint.
      log: line logger.

    Returns:
      the final state.
    """
    if (gcfg.img_channels * tcfg.pack != dcfg.img_channels
            or gcfg.img_resolution != dcfg.img_resolution):
        raise ValueError(
            f"discriminator input {dcfg.img_channels}x{dcfg.img_resolution} does not match the "
            f"generator's {gcfg.img_channels}x{gcfg.img_resolution} images packed by "
            f"{tcfg.pack} (expected {gcfg.img_channels * tcfg.pack}x{gcfg.img_resolution})")
    os.makedirs(workdir, exist_ok=True)
    config = {"generator": gcfg.to_dict(), "discriminator": dcfg.to_dict(),
              "train": tcfg.to_dict(), "data": data}
    if init_from is not None:
        config["init_from"] = os.path.abspath(init_from)
    _check_or_write_config(workdir, config)
    images = jnp.asarray(load_training_images(data, gcfg.img_resolution, gcfg.img_channels))
    log(f"data {data}: {images.shape[0]} images {tuple(images.shape[1:])}")

    root = jax.random.key(tcfg.seed)
    loop_key = jax.random.fold_in(root, 1)
    grid_z = jax.random.normal(jax.random.fold_in(root, 2), (64, gcfg.z_dim))
    mngr = _checkpoint_manager(workdir)
    if init_from is not None and mngr.latest_step() is None:
        state = restore_from_run(init_from, gcfg, dcfg, tcfg)
        log(f"starting from {init_from} at step {int(state.step)}")
    else:
        state = restore_or_init(workdir, gcfg, dcfg, tcfg, mngr)
    progress = _read_progress(workdir)
    steps = make_steps(gcfg, dcfg, tcfg)
    log(f"G {sg.num_params({'params': state.g_params})} params, "
        f"D {disc.count_params(state.d_params)} params; start at step {int(state.step)} "
        f"({int(state.step) * tcfg.batch / 1000:.1f} kimg)")

    total_steps = math.ceil(total_kimg * 1000 / tcfg.batch)
    start = last_ckpt = time.time()
    step0 = int(state.step)
    window_t, window_step, pending = time.time(), step0, []
    while int(state.step) < total_steps:
        if minutes is not None and time.time() - start >= minutes * 60:
            log(f"time budget of {minutes} min reached")
            break
        n = min(log_every - int(state.step) % log_every, total_steps - int(state.step))
        state, metrics = run_iterations(steps, tcfg, state, images, loop_key, n)
        pending += metrics
        step = int(state.step)
        now = time.time()
        if step % log_every == 0 or step == total_steps:
            means = _mean_metrics(pending)
            rate = (step - window_step) * tcfg.batch / max(now - window_t, 1e-9)
            log(f"step {step} kimg {step * tcfg.batch / 1000:.1f} "
                + " ".join(f"{k} {v:.4f}" for k, v in sorted(means.items()))
                + f" img/s {rate:.1f} elapsed_min {(progress['seconds'] + now - start) / 60:.1f}")
            if not all(np.isfinite(v) for v in means.values()):
                raise FloatingPointError(f"non-finite losses at step {step}: {means}")
            window_t, window_step, pending = now, step, []
        if step % sample_every == 0 or step == total_steps:
            write_sample_grid(workdir, steps, state, grid_z, step * tcfg.batch)
        if now - last_ckpt >= checkpoint_minutes * 60:
            _save(mngr, state, workdir, progress, now - start)
            last_ckpt = now
    _save(mngr, state, workdir, progress, time.time() - start)
    write_sample_grid(workdir, steps, state, grid_z, int(state.step) * tcfg.batch)
    if export_dir:
        export_generator(export_dir, gcfg, state)
        log(f"exported EMA generator to {export_dir}")
    return state


def write_sample_grid(workdir: str, steps: Steps, state: GanState, grid_z: jax.Array,
                      nimg: int) -> None:
    png = images_lib.png_bytes(
        images_lib.make_grid(np.asarray(steps.sample(state, grid_z)), ncols=8, pad=0))
    folder = os.path.join(workdir, "samples")
    io_lib.write_bytes(os.path.join(folder, f"fakes{nimg // 1000:06d}.png"), png)
    io_lib.write_bytes(os.path.join(folder, "latest.png"), png)


def export_generator(path: str, gcfg: sg.GeneratorConfig, state: GanState) -> None:
    """Writes the EMA generator with `sparse_jax.checkpoints.save_generator`."""
    from sparse_jax.io import model_dirs

    variables = jax.tree_util.tree_map(np.asarray, ema_variables(state))
    model_dirs.save_generator(path, gcfg, variables)


def _save(mngr: Any, state: GanState, workdir: str, progress: dict[str, Any],
          seconds: float) -> None:
    save_checkpoint(mngr, state)
    io_lib.write_json(os.path.join(workdir, _PROGRESS_FILE), {
        "step": int(state.step), "seconds": progress["seconds"] + seconds,
        "sessions": progress["sessions"] + [seconds]})


def _read_progress(workdir: str) -> dict[str, Any]:
    path = os.path.join(workdir, _PROGRESS_FILE)
    if not os.path.exists(path):
        return {"seconds": 0.0, "sessions": []}
    with open(path) as f:
        return json.load(f)


def _mean_metrics(metrics: list[dict[str, jax.Array]]) -> dict[str, float]:
    host = jax.device_get(metrics)
    keys = sorted({k for m in host for k in m})
    return {k: float(np.mean([m[k] for m in host if k in m])) for k in keys}
