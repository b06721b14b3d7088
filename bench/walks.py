"""Walk throughput: the jitted, vmapped, chunked `walks.run_walks` against Python loops over seeds.

A walk is one seed x one direction over T distances and both signs (2T - 1 distinct images, as the
unedited image is shared). Baselines, timed in the same run on fewer seeds and reported per walk:
  loop-single: for each seed, direction, sign and distance, one jitted batch-1 call
               (z -> w -> edit -> image -> prediction);
  loop-seed:   for each seed, one jitted call on that seed's D x 2 x T edits.
Generator: the shipped MNIST generator when present, else a random-init 32x32 1-channel
generator (channel_base 2048, channel_max 128, z/w 128, 4 mapping layers). Predictor: the
shipped classifier when present, else a mean-brightness sigmoid.

  python bench/walks.py --seeds 500 --directions 10 --distances 11
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

_SEEDS = flags.DEFINE_integer("seeds", 500, "S: seeds of the batched walk.")
_DIRECTIONS = flags.DEFINE_integer("directions", 10, "D: directions.")
_DISTANCES = flags.DEFINE_integer("distances", 11, "T: distances from 0 to d_max.")
_D_MAX = flags.DEFINE_float("d_max", 3.0, "Walk length in W units (does not affect timing).")
_CHUNK = flags.DEFINE_integer("chunk", 0, "Edits per jitted batch (0: walks.default_chunk()).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats of each method (median reported).")
_LOOP_SEEDS = flags.DEFINE_integer("loop_seeds", 2, "Seeds timed for the loop baselines.")
_RANDOM = flags.DEFINE_boolean("random_init", False, "Use the random-init generator even if "
                               "the shipped one exists.")


def _models(random_init):
    import jax

    from sparse_jax.evaluation import run as evaluate
    from sparse_jax.io import model_dirs
    from sparse_jax.models import stylegan2 as sg

    gen = None
    if not random_init:
        try:
            gen = model_dirs.default_generator_path()
        except FileNotFoundError:
            gen = None
    if gen is not None:
        cfg, variables = model_dirs.load_generator(gen)
        gen_name = "shipped MNIST generator"
    else:
        cfg = sg.GeneratorConfig(z_dim=128, w_dim=128, img_resolution=32, img_channels=1,
                                 mapping_layers=4, channel_base=2048, channel_max=128,
                                 conv_clamp=256.0)
        variables = sg.init_generator(jax.random.key(0), cfg)
        gen_name = "random-init 32x32x1, channel_base 2048, channel_max 128"
    try:
        predict, names = evaluate.load_predictor(None)
        pred_name = f"shipped classifier ({len(names)} attributes)"
    except (FileNotFoundError, ValueError):
        predict = jax.tree_util.Partial(_brightness)
        pred_name = "mean-brightness sigmoid (shipped classifier not found)"
    return cfg, variables, predict, gen_name, pred_name


def _brightness(images):
    import jax

    return jax.nn.sigmoid(images.mean(axis=(1, 2, 3)))[:, None]


def _median_time(fn, repeats):
    import numpy as np

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    import jax
    import jax.numpy as jnp
    import numpy as np

    from sparse_jax.core import seeds as seed_streams
    from sparse_jax.evaluation import walks
    from sparse_jax.models import stylegan2 as sg

    cfg, variables, predict, gen_name, pred_name = _models(_RANDOM.value)
    s, d, t = _SEEDS.value, _DIRECTIONS.value, _DISTANCES.value
    chunk = _CHUNK.value or walks.default_chunk()
    key = jax.random.key(0)
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(d, cfg.w_dim))
    dirs = (dirs / np.linalg.norm(dirs, axis=1, keepdims=True)).astype(np.float32)
    distances = np.linspace(0.0, _D_MAX.value, t)
    offsets = walks.walk_offsets(distances, d)                       # [D, 2, T]
    mask = walks.layer_mask(cfg.num_ws)
    variables = jax.device_put(variables)

    def batched(num_seeds):
        return walks.run_walks(cfg, variables, key, np.arange(num_seeds), dirs, distances,
                               predict_fn=predict, chunk=chunk).preds

    @jax.jit
    def edits(v, pred, seed, dir_vecs, offs):
        z = seed_streams.latents(key, seed[None], cfg.z_dim)
        ws = sg.map_latents(cfg, v, z)
        ws = jax.vmap(walks.edit_ws, in_axes=(None, 0, 0, None))(ws[0], dir_vecs, offs, mask)
        return pred(sg.synthesize(cfg, v, ws))

    flat_dirs = jax.device_put(np.repeat(dirs, 2 * t, axis=0))      # [D*2*T, w_dim]
    flat_offs = jax.device_put(offsets.reshape(-1).astype(np.float32))
    singles = [(jax.device_put(dirs[j]), jax.device_put(np.float32(o)))
               for j in range(d) for o in offsets[j].reshape(-1)]

    def loop_single(num_seeds):
        out = []
        for i in range(num_seeds):
            seed = jnp.int32(i)
            for dv, o in singles:
                out.append(edits(variables, predict, seed, dv[None], o[None]))
        return np.asarray(jnp.stack(out))

    def loop_seed(num_seeds):
        return np.asarray(jnp.stack([edits(variables, predict, jnp.int32(i), flat_dirs, flat_offs)
                                     for i in range(num_seeds)]))

    # Warm-up (compilation) for every path, then timed runs.
    ref = batched(1)
    np.testing.assert_allclose(loop_seed(1).reshape(ref.shape), ref, atol=1e-4)
    loop_single(1)
    n_loop = _LOOP_SEEDS.value
    rows = []
    for name, fn, seeds in [("run_walks (jit + vmap, chunked)", batched, s),
                            ("loop-seed (one jitted call per seed)", loop_seed, n_loop),
                            ("loop-single (one jitted call per edit)", loop_single, n_loop)]:
        med, times = _median_time(lambda fn=fn, seeds=seeds: fn(seeds), _REPEATS.value)
        rows.append((name, seeds, med, times, seeds * d / med))
    base = rows[-1][4]
    n_img = (1 + d * 2 * (t - 1))
    print(f"Generator: {gen_name}; predictor: {pred_name}; devices: {jax.devices()}")
    print(f"S={s}, D={d}, T={t}, chunk={chunk}; a walk = 1 seed x 1 direction x "
          f"{t} distances x 2 signs. The first run_walks run includes compiling its chunk shape "
          f"(about 10 s on a CPU); loops are compiled before timing.\n")
    print("| method | seeds timed | median s | runs (s) | walks/s | images/s | vs loop-single |")
    print("|---|---|---|---|---|---|---|")
    for name, seeds, med, times, rate in rows:
        imgs = seeds * (n_img if name.startswith("run_walks") else d * 2 * t) / med
        print(f"| {name} | {seeds} | {med:.2f} | {', '.join(f'{x:.1f}' for x in times)} | "
              f"{rate:.2f} | {imgs:.0f} | {rate / base:.1f}x |")


if __name__ == "__main__":
    app.run(main)
