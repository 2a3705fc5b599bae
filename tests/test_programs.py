"""The store of built programs: a program built before is loaded, not traced, and computes the same."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxdyna import programs


@struct.dataclass
class Carry:
    x: jax.Array
    n: jax.Array


def step(c: Carry, scale: jax.Array):
    y = jnp.tanh(c.x @ c.x.T * scale).sum(axis=1)
    return Carry(x=c.x + y[:, None], n=c.n + 1), {"y": y}


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(programs, "store_dir", lambda: tmp_path / "programs")
    return tmp_path / "programs"


def _args():
    return Carry(x=jnp.arange(12.0).reshape(4, 3) / 10, n=jnp.int32(0)), jnp.float32(0.5)


def test_stored_program_is_loaded_without_tracing_and_computes_the_same(store):
    traced = []

    def make():
        traced.append(1)
        return step

    first = programs.build("step", "v1", make, _args(), donate=0)
    assert first is not None and not first.loaded and traced == [1]
    out1 = first(*_args())
    again = programs.build("step", "v1", make, _args(), donate=0)
    assert again.loaded and traced == [1]                       # deserialized: `make` never called
    out2 = again.compile(*_args())(*_args())
    plain = jax.jit(step)(*_args())
    for a, b, c in zip(jax.tree_util.tree_leaves(out1), jax.tree_util.tree_leaves(out2), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert isinstance(out2[0], Carry) and again.out_shapes[0].x.shape == (4, 3)


def test_a_different_config_shape_or_source_is_a_different_program(store, monkeypatch):
    c, s = _args()
    key = programs.program_key("step", "v1", (c, s))
    assert programs.program_key("step", "v2", (c, s)) != key
    assert programs.program_key("step", "v1", (c.replace(x=jnp.zeros((5, 3))), s)) != key
    assert programs.program_key("step", "v1", (c, s.astype(jnp.bfloat16))) != key
    monkeypatch.setattr(programs, "_code_digest", lambda: "edited source")
    assert programs.program_key("step", "v1", (c, s)) != key


def test_a_damaged_file_is_rebuilt_and_no_store_means_plain_jit(store, monkeypatch):
    programs.build("step", "v1", lambda: step, _args())
    (path,) = store.glob("step-*.bin")
    path.write_bytes(b"not a program")
    rebuilt = programs.build("step", "v1", lambda: step, _args())
    assert not rebuilt.loaded
    np.testing.assert_array_equal(rebuilt(*_args())[1]["y"], jax.jit(step)(*_args())[1]["y"])
    monkeypatch.setattr(programs, "store_dir", lambda: None)      # no store: the plain jitted function
    plain = programs.build("step", "v1", lambda: step, _args(), donate=0)
    assert not plain.loaded and plain.out_shapes[0].x.shape == (4, 3)
    np.testing.assert_array_equal(plain(*_args())[1]["y"], jax.jit(step)(*_args())[1]["y"])
    assert [p.name for p in store.iterdir()] == [path.name]             # nothing new was written


def test_shapes_are_stored_too(store):
    calls = []

    def make():
        calls.append(1)
        return step

    a = programs.shapes("step", "v1", make, _args())
    b = programs.shapes("step", "v1", make, _args())
    assert calls == [1] and jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    assert [x.shape for x in jax.tree_util.tree_leaves(b)] == [(4, 3), (), (4,)]


def test_the_key_names_the_kind_and_number_of_devices_not_which():
    """A one-device program built on one CPU device serves any other (groups change devices)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    dev = jax.devices()[0]
    x = jax.ShapeDtypeStruct((4, 3), jnp.float32, sharding=NamedSharding(Mesh(np.array([dev]), ("runs",)), PartitionSpec("runs")))
    y = jax.ShapeDtypeStruct((4, 3), jnp.float32, sharding=NamedSharding(Mesh(np.array([dev]), ("other",)), PartitionSpec("other")))
    assert dev.platform in programs._describe(x) and "runs" in programs._describe(x)
    assert programs.program_key("p", "v", (x,)) != programs.program_key("p", "v", (y,))


class _Wrapped:
    """Static pytree data like MJX's: a NumPy array in a wrapper whose repr holds its address."""

    def __init__(self, array):
        self.array = array

    def __hash__(self):
        return hash(self.array.tobytes())

    def __eq__(self, other):
        return np.array_equal(self.array, other.array)


@jax.tree_util.register_pytree_node_class
class _Node:
    def __init__(self, x, meta):
        self.x, self.meta = x, meta

    def tree_flatten(self):
        return (self.x,), self.meta

    @classmethod
    def tree_unflatten(cls, meta, children):
        return cls(children[0], meta)


def test_the_key_reads_static_data_by_content_not_by_address():
    """A state whose static data prints a memory address (MJX's `Data`) must give the same key in
    every process, or its program is never found again; different contents stay different."""
    x = jax.ShapeDtypeStruct((3,), jnp.float32)
    key = lambda meta: programs.program_key("advance", "cfg", (_Node(x, meta),))
    a, b = _Wrapped(np.arange(4)), _Wrapped(np.arange(4))
    assert " at 0x" in str(jax.tree_util.tree_structure(_Node(x, a)))        # what str(tree) gave
    assert key(a) == key(b)
    assert key(a) != key(_Wrapped(np.arange(5))) and key(a) != key(_Wrapped(np.arange(4) + 1))
    assert key((a, {"k": 1})) == key((b, {"k": 1})) != key((b, {"k": 2}))
    assert programs._static_text(frozenset({"b", "a"})) == programs._static_text(frozenset({"a", "b"})) == "set('a','b')"


@pytest.mark.slow
def test_an_mjx_state_has_the_same_key_in_every_process():
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import jax; from jaxdyna import programs; from jaxdyna.envs import make_env, env_reset; "
              "env = make_env('hopper', 'mjx'); "
              "s = jax.eval_shape(lambda k: env_reset(env, k, 2), jax.random.PRNGKey(0)); "
              "print(programs.program_key('advance', 'cfg', (s,)))")
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                           timeout=300, check=True).stdout.strip() for _ in range(2)}
    assert len(keys) == 1 and len(keys.pop()) == 32
