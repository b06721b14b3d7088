"""The one seed convention (sparse_jax.core.seeds): `--seeds` names the same images in generate,
render and the evaluation walks; discovery's fit and regression samples and the evaluation seeds
come from disjoint streams of the run seed."""
import functools

import conftest  # noqa: F401  (4 CPU devices before JAX starts)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sparse_jax.core import seeds
from sparse_jax.evaluation import run as evaluate
from sparse_jax.evaluation import walks
from sparse_jax.generation import generate
from sparse_jax.models import stylegan2 as sg

CFG = sg.GeneratorConfig(z_dim=8, w_dim=8, img_resolution=8, img_channels=1, mapping_layers=2,
                         channel_base=64, channel_max=8)


@functools.lru_cache(maxsize=1)
def _variables():
    return sg.init_generator(jax.random.key(0), CFG)


def _key_data(key):
    return np.asarray(jax.random.key_data(key))


@pytest.mark.parametrize("run_seed", [0, 3])
def test_seeds_name_the_same_images_in_generate_render_and_evaluation(run_seed):
    spec = "0-3,6"
    kind, z = generate.resolve_latents(CFG, spec, None, None, run_seed)
    assert kind == "z"
    np.testing.assert_array_equal(z, seeds.seed_latents([0, 1, 2, 3, 6], CFG.z_dim, run_seed))
    gen_images, _ = generate.render(CFG, _variables(), kind, z, batch=2)
    # bin/render and bin/evaluate walk from evaluate.walk_key(--seed) with the seed indices.
    assert np.array_equal(_key_data(evaluate.walk_key(run_seed)),
                          _key_data(seeds.stream_key(run_seed, seeds.IMAGE_STREAM)))
    out = walks.run_walks(CFG, _variables(), evaluate.walk_key(run_seed), [0, 1, 2, 3, 6],
                          np.eye(CFG.w_dim)[:1], [0.0], signs=(1.0,), return_images=True)
    np.testing.assert_allclose(out.images[:, 0, 0, 0], gen_images, atol=1e-5)
    # A seed's image does not depend on which other seeds are asked for, nor on their order.
    _, z6 = generate.resolve_latents(CFG, "6", None, None, run_seed)
    np.testing.assert_array_equal(z6[0], z[4])


def test_run_seed_changes_the_images_and_streams_are_distinct():
    z0 = seeds.seed_latents(range(4), CFG.z_dim, 0)
    z1 = seeds.seed_latents(range(4), CFG.z_dim, 1)
    assert np.abs(z0 - z1).min() > 0
    keys = {(s, name): _key_data(seeds.stream_key(s, stream)).tobytes()
            for s in (0, 1) for name, stream in seeds.STREAMS.items()}
    assert len(set(keys.values())) == len(keys)


def test_discovery_fit_regression_and_evaluation_samples_are_disjoint():
    from sparse_jax.discovery import run as discover

    n = 40
    r = discover.run_discovery(CFG, _variables(), methods="pca", layers="b4.conv1",
                               num_samples=n, num_regression_samples=n, k=2, batch=16,
                               progress=False)
    fit_w = r.fit.w
    # The documented convention: fit sample i is seeds.latents(FIT_STREAM key, i).
    z_fit = seeds.latents(seeds.stream_key(0, seeds.FIT_STREAM), jnp.arange(n), CFG.z_dim)
    np.testing.assert_allclose(fit_w, np.asarray(sg.map_latents(CFG, _variables(), z_fit)[:, 0]),
                               atol=1e-5)
    streams = {name: np.asarray(seeds.latents(seeds.stream_key(0, s), jnp.arange(n), CFG.z_dim))
               for name, s in seeds.STREAMS.items()}
    names = list(streams)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            # No latent of one stream's first n samples is (near) any latent of another's.
            d = np.linalg.norm(streams[a][:, None] - streams[b][None], axis=-1)
            assert d.min() > 1e-3, (a, b)
    # The evaluation walks (assignment and evaluation seeds 0..n-1) start elsewhere than the fit.
    z_eval = seeds.seed_latents(range(n), CFG.z_dim, 0)
    assert np.linalg.norm(np.asarray(z_fit)[:, None] - z_eval[None], axis=-1).min() > 1e-3


@pytest.mark.parametrize("spec,match", [("3-1", "bad seed range"), ("a", "bad seed range"),
                                        ("", "no seeds"), ("0-4294967296", "<=")])
def test_parse_seeds_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        seeds.parse_seeds(spec)


def test_parse_seeds_and_bad_streams():
    assert seeds.parse_seeds("0-3, 7,9-10") == [0, 1, 2, 3, 7, 9, 10]
    with pytest.raises(ValueError, match="stream"):
        seeds.stream_key(0, 99)
    with pytest.raises(ValueError, match="--seed"):
        seeds.stream_key(-1, 0)
