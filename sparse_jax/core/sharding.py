"""Device-mesh helpers: a 1-D data mesh, batch padding, multi-process start-up and host copies.

The discovery pipeline shards only the batch axis ("data"); weights are replicated. Every sample's
randomness is derived from its global index, so the mesh size never changes what is computed.
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(enabled: bool, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None
                           ) -> None:
    """Starts `jax.distributed` for a multi-process run when `enabled` (must precede any JAX use).

    On a Cloud TPU pod slice, Kubernetes, or a GPU cluster under SLURM / Open MPI, JAX finds the
    three values itself (leave them None); elsewhere pass them, or set the environment variables
    JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID on every process (the binaries'
    `--multihost` flag relies on that). CPU processes exchange data through gloo collectives.

    Args:
      enabled: the `--multihost` flag; False does nothing, so single-host runs never touch the
        coordinator service.
      coordinator_address: "host:port" of process 0.
      num_processes: how many processes take part.
      process_id: this process's index in [0, num_processes).
    """
    if not enabled:
        return
    env = os.environ
    try:
        if num_processes is None and env.get("JAX_NUM_PROCESSES"):
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and env.get("JAX_PROCESS_ID"):
            process_id = int(env["JAX_PROCESS_ID"])
    except ValueError:
        raise ValueError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers, got "
                         f"{env.get('JAX_NUM_PROCESSES')!r} and {env.get('JAX_PROCESS_ID')!r}"
                         ) from None
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        # CPU devices of different processes talk through gloo (the default has no cross-process
        # collectives on CPU).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


def is_main_process() -> bool:
    """True on process 0, the one process that writes a run's output files."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """Blocks until every process reaches this point (a no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def shard_rows(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """A host [n, ...] array (the same on every process) row-sharded over the mesh.

    Rows are split over the mesh's devices when n divides evenly (no padding: a padded row
    would change a decomposition); otherwise every device gets a full copy.
    """
    x = np.asarray(x)
    if x.shape[0] % mesh.size == 0:
        return shard_host_array(x, data_sharding(mesh))
    return shard_host_array(x, replicated(mesh))


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process) with axis "data".

    Args:
      devices: the devices to shard the batch over, e.g. `jax.devices()[:1]` for a 1-device run.

    Returns:
      Mesh with axis name `DATA_AXIS` and `len(devices)` entries.
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("make_data_mesh: got an empty device list")
    return Mesh(np.asarray(devs, dtype=object), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits axis 0 over the mesh's data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that puts a full copy on every device of the mesh."""
    return NamedSharding(mesh, P())


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= n."""
    if multiple <= 0:
        raise ValueError(f"round_up: multiple must be positive, got {multiple}")
    return -(-int(n) // multiple) * multiple


def pad_batch(x: np.ndarray, multiple: int) -> tuple[np.ndarray, int]:
    """Pads axis 0 of `x` to a multiple of `multiple` by repeating its last row.

    Repeating a real row (instead of zeros) keeps padded rows numerically harmless for any
    function; callers drop them using the returned count.

    Args:
      x: [n, ...] array, n >= 1.
      multiple: e.g. the number of devices in the mesh.

    Returns:
      (padded [round_up(n, multiple), ...], n).
    """
    x = np.asarray(x)
    n = x.shape[0]
    if n == 0:
        raise ValueError("pad_batch: cannot pad an empty batch")
    extra = round_up(n, multiple) - n
    if extra:
        x = np.concatenate([x, np.repeat(x[-1:], extra, axis=0)], axis=0)
    return x, n


def shard_host_array(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """Places a host array that every process holds in full onto a (possibly multi-host) sharding.

    `make_array_from_callback` hands each addressable device its slice, which works on one host
    and on many alike (plain `device_put` needs every device to be addressable).

    Args:
      x: [n, ...] host array, identical on every process.
      sharding: target sharding (axis 0 must divide evenly over the mesh).

    Returns:
      A global jax.Array of shape x.shape.
    """
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)  # explicit: allowed under transfer_guard("disallow")
    # A deliberate transfer of each process's own slices (the guard treats it as implicit).
    with jax.transfer_guard("allow"):
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def put_replicated(tree, mesh: Mesh):
    """A full copy of every leaf of `tree` (weights, keys, a `Partial`'s arrays) on every device.

    One process: an explicit `device_put` (allowed under `jax.transfer_guard("disallow")`).
    Several: every process holds the same values, so each leaf goes through the host and
    `shard_host_array` (a committed single-device array cannot be `device_put` onto devices of
    other processes).
    """
    repl = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, repl)

    def put(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                                  jax.dtypes.prng_key):
            data = np.asarray(jax.device_get(jax.random.key_data(leaf)))
            return jax.random.wrap_key_data(shard_host_array(data, repl),
                                            impl=jax.random.key_impl(leaf))
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float)):
            return shard_host_array(np.asarray(jax.device_get(leaf)), repl)
        return leaf

    return jax.tree_util.tree_map(put, tree)


def to_host(x: jax.Array) -> np.ndarray:
    """Gathers a (possibly multi-host) global array into a host numpy array on every process."""
    if jax.process_count() > 1 and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
