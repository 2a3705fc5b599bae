"""Built programs kept on disk, so that a program built before is loaded instead of traced.

Building a sweep group's program has two costs: tracing the training loop in Python and
lowering it (MBPO: about 8 s on one CPU core, every time) and XLA's compilation (about 60 s cold;
JAX's persistent compilation cache removes it on a repeat). `build` removes the first: the first
time it exports the jitted function with `jax.export` (StableHLO, its input shardings, its output
shapes) into the cache directory; later it deserializes that file and calls it. Either way the
program that runs is the exported one, so a first and a repeated run compute the same numbers.

The file's name is a digest of everything that decides the program: the program's name, the
config (`repr`), the batching, the arguments' shapes, dtypes and shardings, the devices, the
source of every `jaxdyna` module, the versions of jax, jaxlib, brax, mujoco, flax, optax and
playground, and the JAX settings that change what a trace computes (x64, matmul precision, PRNG).
Where nothing can be stored (no cache directory, `--no-cache`; several processes; a program
`jax.export` cannot serialize) `build` gives the plain jitted function behind the same interface.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import re
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from jaxdyna.io import atomic_path

PACKAGES = ("jax", "jaxlib", "brax", "mujoco", "flax", "optax", "playground")
CONFIG_FLAGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_threefry_partitionable",
                "jax_default_prng_impl")          # JAX settings that change what a trace computes


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The jaxdyna sources and the library versions, as one digest."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    for name in PACKAGES:
        try:
            h.update(f"{name}={version(name)}".encode())
        except PackageNotFoundError:
            h.update(f"{name}=none".encode())
    return h.hexdigest()


def store_dir() -> Path | None:
    """Where built programs are kept: beside JAX's persistent compilation cache (None: no cache)."""
    root = jax.config.jax_compilation_cache_dir
    return Path(root) / "jaxdyna-programs" if root else None


def _describe(x) -> str:
    """Shape, dtype and sharding of an argument; of its devices only their kind and number (an
    exported program runs on any devices of that kind and number: a group that ran on CPU device
    1 reuses its program on device 0)."""
    sharding = getattr(x, "sharding", None)
    devices = sorted((d.platform, d.device_kind) for d in sharding.device_set) if sharding is not None else None
    spec = getattr(sharding, "spec", None)
    shape = dict(getattr(getattr(sharding, "mesh", None), "shape", {}) or {})
    return f"{tuple(x.shape)}:{x.dtype}:{type(sharding).__name__}:{spec}:{shape}:{devices}"


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _static_text(x) -> str:
    """Text of a pytree node's static data that is the same in every process: arrays (MJX keeps
    NumPy arrays of the model there, wrapped to be hashable) by shape, dtype and content digest,
    containers item by item, anything else by its repr without memory addresses."""
    array = x if isinstance(x, np.ndarray) else getattr(x, "array", None)
    if isinstance(array, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
        return f"array{array.shape}:{array.dtype}:{digest}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__}(" + ",".join(map(_static_text, x)) + ")"
    if isinstance(x, dict):
        return "{" + ",".join(f"{k!r}:{_static_text(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (set, frozenset)):                 # printed in hash order, which varies by process
        return "set(" + ",".join(sorted(map(_static_text, x))) + ")"
    return _ADDRESS.sub("", repr(x))


def _tree_text(tree) -> str:
    """A pytree structure as text that is the same in every process. `str(tree)` is not: node
    types' static data can print memory addresses (MJX's `Data`), so a program over an MJX state
    would never be found again."""
    data = tree.node_data()
    if data is None:
        return "*"
    kind, aux = data
    return (f"{kind.__module__}.{kind.__qualname__}[{_static_text(aux)}]("
            + ",".join(_tree_text(c) for c in tree.children()) + ")")


def program_key(name: str, what: str, args: tuple) -> str:
    leaves, tree = jax.tree_util.tree_flatten(args)
    h = hashlib.sha256()
    flags = [f"{k}={getattr(jax.config, k)}" for k in CONFIG_FLAGS]
    for part in (name, what, _tree_text(tree), *map(_describe, leaves), *flags, _code_digest()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


class Built:
    """A jitted program over pytrees: a stored or fresh export, or the plain jitted function."""

    def __init__(self, call: Callable, out_tree, out_avals, loaded: bool):
        self._call, self.out_tree, self.loaded = call, out_tree, loaded
        self.out_shapes = jax.tree_util.tree_unflatten(out_tree, [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in out_avals])

    def compile(self, *args) -> "Built":
        """Compile now for these (abstract) arguments rather than at the first call."""
        self._call = self._call.lower(*jax.tree_util.tree_leaves(args)).compile()
        return self

    def __call__(self, *args):
        return jax.tree_util.tree_unflatten(self.out_tree, self._call(*jax.tree_util.tree_leaves(args)))


def _load(path: Path) -> dict | None:
    try:
        return pickle.loads(path.read_bytes()) if path.is_file() else None
    except Exception:  # noqa: BLE001 - a damaged or foreign file: build afresh
        return None


def _save(path: Path, blob: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(pickle.dumps(blob))
    except OSError:
        pass                                        # an unwritable cache: this run still works


def _flat(make_fn: Callable[[], Callable], args: tuple, trees: dict) -> Callable:
    """`make_fn()` over the flat leaves of `args`; records the output's tree in `trees`."""
    in_tree = jax.tree_util.tree_structure(args)
    fn = make_fn()

    def flat(*leaves):
        out_leaves, trees["out"] = jax.tree_util.tree_flatten(fn(*jax.tree_util.tree_unflatten(in_tree, leaves)))
        return out_leaves

    return flat


def _specs(args: tuple) -> list:
    return [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
            for x in jax.tree_util.tree_leaves(args)]


def build(name: str, what: str, make_fn: Callable[[], Callable], args: tuple, donate: int | None = None) -> Built:
    """`jax.jit(make_fn())` for `args` (arrays, or `jax.ShapeDtypeStruct`s with shardings): the
    stored program when there is one, else a fresh export, stored; the plain jitted function
    where nothing can be stored (no store, several processes, or a program `jax.export` cannot
    serialize). `make_fn` is called only when the program must be traced; `what` describes
    everything about the function that `name` does not (its config); `donate` is the index of an
    argument whose buffers the call may reuse (the training state)."""
    sizes = [len(jax.tree_util.tree_leaves(a)) for a in args]
    donated = ()
    if donate is not None:
        start = sum(sizes[:donate])
        donated = tuple(range(start, start + sizes[donate]))
    root = store_dir()
    path = None if root is None or jax.process_count() > 1 else root / f"{name}-{program_key(name, what, args)}.bin"
    blob = _load(path) if path is not None else None
    if blob is not None:
        try:
            exported = jax.export.deserialize(bytearray(blob["exported"]))
            return Built(jax.jit(exported.call, donate_argnums=donated), blob["out_tree"], exported.out_avals, True)
        except Exception:  # noqa: BLE001 - a damaged or foreign file: build afresh
            pass
    trees: dict = {}
    flat = _flat(make_fn, args, trees)
    if path is not None:
        try:
            exported = jax.export.export(jax.jit(flat))(*_specs(args))
        except Exception:  # noqa: BLE001 - e.g. a custom call jax.export does not guarantee: plain jit
            exported = None
        if exported is not None:
            _save(path, {"exported": bytes(exported.serialize()), "out_tree": trees["out"]})
            return Built(jax.jit(exported.call, donate_argnums=donated), trees["out"], exported.out_avals, False)
    call = jax.jit(flat, donate_argnums=donated)
    out_avals = jax.tree_util.tree_leaves(jax.eval_shape(call, *_specs(args)))
    return Built(call, trees["out"], out_avals, False)


def shapes(name: str, what: str, make_fn: Callable[[], Callable], args: tuple):
    """`jax.eval_shape(make_fn(), *args)`, kept in the store like a built program."""
    root = store_dir()
    path = root / f"{name}-{program_key(name, what, args)}.shapes" if root is not None else None
    blob = _load(path) if path is not None else None
    if blob is None:
        out = jax.eval_shape(make_fn(), *args)
        leaves, tree = jax.tree_util.tree_flatten(out)
        blob = {"tree": tree, "leaves": [(x.shape, x.dtype) for x in leaves]}
        if path is not None:
            _save(path, blob)
    return jax.tree_util.tree_unflatten(blob["tree"], [jax.ShapeDtypeStruct(s, d) for s, d in blob["leaves"]])
