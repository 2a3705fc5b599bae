"""Minimal compatibility shim so Brax 0.14.2's training agents run on the current jax.

Brax 0.14.2 (`brax/training/agents/sac/train.py`, `_init_training_state`) still calls
`jax.device_put_replicated(tree, devices)`, which recent jax releases removed. Its contract was:
give every leaf a new leading axis of size `len(devices)` holding one identical copy per device,
with copy `i` placed on `devices[i]` (the layout `jax.pmap` expects for its inputs).

`install()` restores exactly that with public APIs: stack the copies, then `device_put` them
with a `NamedSharding` that splits the new leading axis over a 1-D mesh of `devices`. With one
device (this benchmark's case) it is a plain stack on that device. Nothing else in Brax's SAC
needs patching on jax 0.10.2: `jax.pmap` still exists and Brax already reads pmapped outputs
through `addressable_shards` (its `_unpmap`).

The shim is installed only when the attribute is missing, so on an older jax the original is
used untouched. It affects only the benchmark process that imports and installs it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_AXIS = "i"   # the axis name Brax pmaps over (`_PMAP_AXIS_NAME`), so shim and pmap outputs share one type


def device_put_replicated(x, devices):
    """`jax.device_put_replicated` as it behaved before its removal (see module docstring)."""
    devices = list(devices)
    if not devices:
        raise ValueError("device_put_replicated: `devices` must be non-empty")
    sharding = NamedSharding(Mesh(np.array(devices), (_AXIS,)), PartitionSpec(_AXIS))

    def rep(leaf):
        leaf = jnp.asarray(leaf)
        stacked = jnp.broadcast_to(leaf[None], (len(devices),) + leaf.shape)
        return jax.device_put(stacked, sharding)

    return jax.tree_util.tree_map(rep, x)


def install() -> list[str]:
    """Install the shims that are needed; returns the names of those installed."""
    installed = []
    if not hasattr(jax, "device_put_replicated"):
        jax.device_put_replicated = device_put_replicated
        installed.append("jax.device_put_replicated")
    return installed
