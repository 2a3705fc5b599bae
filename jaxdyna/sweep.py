"""Many runs (seeds x hyperparameter settings) as one vmapped, device-sharded program."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdyna.config import Config, ConfigError, HParams, as_arrays, stack_hparams
from jaxdyna.train import make_train


@dataclass
class SweepResult:
    metrics: dict[str, np.ndarray]    # each [runs, num_evals]
    seeds: np.ndarray                 # [runs]
    setting: np.ndarray               # [runs] index into the list of HParams
    compile_seconds: float
    run_seconds: float


def run_keys(seeds: np.ndarray) -> jax.Array:
    """One PRNG key per run, from its seed alone: a seed gives the same run in any batch."""
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))


def _available_bytes() -> int | None:
    dev = jax.devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend reports memory
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) * len(jax.devices()) - int(stats.get("bytes_in_use", 0))
    try:      # MemAvailable: free memory plus what the kernel can reclaim (page cache), as `free` reports
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def state_bytes(cfg: Config, hp: HParams) -> int:
    """Bytes of one run's training state (buffers dominate), from shapes alone."""
    from jaxdyna import programs

    shapes = programs.shapes("init-solo", repr(cfg), lambda: make_train(cfg, num_evals=1).init,
                             (jax.random.PRNGKey(0), as_arrays(hp)))
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree_util.tree_leaves(shapes))


def _shard_runs(x):
    """Shard the leading run axis over all devices (when it divides evenly)."""
    devices = jax.devices()
    n = len(devices)
    if n == 1 or x.shape[0] % n:
        return x
    mesh = Mesh(np.array(devices), ("runs",))
    return jax.device_put(x, NamedSharding(mesh, PartitionSpec("runs")))


BATCHING = ("auto", "vmap", "map")


def resolve_batching(batching: str = "auto") -> str:
    """`vmap` or `map`; `auto` is map on CPU and vmap on accelerators (see `batched`)."""
    if batching not in BATCHING:
        raise ConfigError(f"batching: unknown {batching!r}; allowed: {', '.join(BATCHING)}")
    if batching == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return batching


def batched(fn: Callable, batching: str = "auto") -> Callable:
    """`fn` over a leading run axis: `vmap` (parallel) or `lax.map` (one run after another).

    Both are one compiled program. `auto` picks vmap on accelerators and map on CPU, where
    vmapping seeds adds no throughput and XLA's batched CPU kernels round the last bit
    differently from unbatched ones (so a seed would drift from the same seed run alone).
    Under `map` a seed's curve is bit-identical to the seed run alone.
    """
    if resolve_batching(batching) == "vmap":
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args)


def run_sweep(cfg: Config, settings: list[HParams], seeds: list[int],
              progress_fn: Callable[[dict], None] | None = None, batching: str = "auto") -> SweepResult:
    """Run every (setting, seed) pair in one compiled program over a flat run axis."""
    setting_idx = np.repeat(np.arange(len(settings)), len(seeds))
    run_seeds = np.tile(np.asarray(seeds, np.int64), len(settings))
    hps = stack_hparams([settings[i] for i in setting_idx])
    keys = run_keys(run_seeds)
    keys, hps = jax.tree_util.tree_map(_shard_runs, (keys, hps))

    prog = make_train(cfg, progress_fn=progress_fn)
    t0 = time.perf_counter()
    compiled = jax.jit(batched(prog.train, batching)).lower(keys, hps).compile()
    t1 = time.perf_counter()
    _, metrics = compiled(keys, hps)
    metrics = jax.tree_util.tree_map(np.asarray, jax.block_until_ready(metrics))
    t2 = time.perf_counter()
    return SweepResult(metrics=metrics, seeds=run_seeds, setting=setting_idx,
                       compile_seconds=t1 - t0, run_seconds=t2 - t1)
