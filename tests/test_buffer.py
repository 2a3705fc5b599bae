import jax
import jax.numpy as jnp
import numpy as np

from jaxdyna.buffer import buffer_add, buffer_init, buffer_keep_newest, buffer_sample, buffer_sample_indices


def _rows(start, n):
    x = jnp.arange(start, start + n, dtype=jnp.float32)
    return {"x": x, "y": jnp.stack([x, -x], axis=1)}


def test_batch_add_and_size():
    buf = buffer_init({"x": jnp.zeros(()), "y": jnp.zeros(2)}, capacity=8)
    buf = buffer_add(buf, _rows(0, 3))
    assert int(buf.size) == 3 and int(buf.ptr) == 3
    np.testing.assert_array_equal(buf.data["x"][:3], [0, 1, 2])
    np.testing.assert_array_equal(buf.data["y"][:3, 1], [0, -1, -2])


def test_wrap_around_overwrites_oldest():
    buf = buffer_init({"x": jnp.zeros(()), "y": jnp.zeros(2)}, capacity=8)
    buf = buffer_add(buf, _rows(0, 6))
    buf = buffer_add(buf, _rows(6, 5))        # 11 rows into 8 slots
    assert int(buf.size) == 8 and int(buf.ptr) == 3
    assert sorted(np.asarray(buf.data["x"]).tolist()) == list(range(3, 11))
    np.testing.assert_array_equal(buf.data["x"][:3], [8, 9, 10])


def test_sampling_only_filled_slots():
    buf = buffer_init({"x": jnp.full((), -1.0), "y": jnp.zeros(2)}, capacity=100)
    buf = buffer_add(buf, _rows(10, 7))
    batch = buffer_sample(buf, jax.random.PRNGKey(0), 5000)
    vals = np.asarray(batch["x"])
    assert set(vals.tolist()) == set(range(10, 17))          # every filled slot, nothing else


def test_sampling_is_uniform_over_live_rows():
    buf = buffer_init({"x": jnp.zeros(())}, capacity=10)
    buf = buffer_add(buf, {"x": jnp.arange(4.0)})
    counts = np.bincount(np.asarray(buffer_sample(buf, jax.random.PRNGKey(1), 40000)["x"]).astype(int))
    assert counts.shape == (4,) and np.all(np.abs(counts / 40000 - 0.25) < 0.02)


def test_masked_add_keeps_rows_contiguous_and_drops_masked():
    buf = buffer_init({"x": jnp.zeros(())}, capacity=6)
    buf = buffer_add(buf, {"x": jnp.arange(4.0)})
    buf = buffer_add(buf, {"x": jnp.arange(10.0, 14.0)}, mask=jnp.array([True, False, True, False]))
    assert int(buf.size) == 6 and int(buf.ptr) == 0
    np.testing.assert_array_equal(buf.data["x"], [0, 1, 2, 3, 10, 12])
    # a masked add that would wrap must not clobber live rows with dropped ones
    buf = buffer_add(buf, {"x": jnp.array([20.0, 21.0, 22.0])}, mask=jnp.array([False, True, False]))
    np.testing.assert_array_equal(buf.data["x"], [21, 1, 2, 3, 10, 12])


def test_keep_newest_evicts_oldest():
    buf = buffer_init({"x": jnp.zeros(())}, capacity=10)
    buf = buffer_add(buf, {"x": jnp.arange(7.0)})
    buf = buffer_keep_newest(buf, jnp.int32(3))
    idx = buffer_sample_indices(buf, jax.random.PRNGKey(0), 1000)
    assert set(np.asarray(buf.data["x"][idx]).tolist()) == {4.0, 5.0, 6.0}
    assert int(buffer_keep_newest(buf, jnp.int32(0)).size) == 0


def test_sampling_a_flushed_buffer_gives_zeros():
    buf = buffer_keep_newest(buffer_add(buffer_init({"x": jnp.zeros(())}, capacity=10), {"x": jnp.arange(1.0, 5.0)}), 0)
    np.testing.assert_array_equal(buffer_sample(buf, jax.random.PRNGKey(0), 6)["x"], np.zeros(6))


def test_add_then_sample_in_one_compiled_loop_sees_the_new_row():
    # The training loop's pattern: each step writes a row, then samples the buffer.
    def step(buf, i):
        buf = buffer_add(buf, {"x": i[None].astype(jnp.float32)})
        return buf, buffer_sample(buf, jax.random.PRNGKey(i), 4)["x"]

    buf = buffer_keep_newest(buffer_add(buffer_init({"x": jnp.zeros(())}, capacity=64), {"x": -jnp.ones(64)}), 0)
    buf, seen = jax.jit(lambda b: jax.lax.scan(step, b, jnp.arange(1, 4)))(buf)
    assert np.asarray(seen[0]).tolist() == [1.0] * 4                  # only row written so far
    assert set(np.asarray(seen[2]).tolist()) <= {1.0, 2.0, 3.0}       # never the flushed -1 rows


def test_capacity_past_the_data_changes_no_sample():
    """Why `train.real_capacity` may cap the real buffer at total_steps: a buffer that never wraps
    samples the same rows whatever its capacity."""
    rows = {"x": jnp.arange(37, dtype=jnp.float32)}
    small, big = buffer_init({"x": jnp.float32(0)}, 40), buffer_init({"x": jnp.float32(0)}, 1000)
    for lo in range(0, 37, 10):
        chunk = jax.tree_util.tree_map(lambda a: a[lo:lo + 10], rows)
        small, big = buffer_add(small, chunk), buffer_add(big, chunk)
    key = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(buffer_sample(small, key, 64)["x"], buffer_sample(big, key, 64)["x"])


def test_real_buffer_is_capped_at_the_run_length():
    from jaxdyna.config import resolve
    from jaxdyna.train import real_capacity

    cfg, _ = resolve({"algo": "sac", "total_steps": 3000, "buffer_size": 1_000_000})
    assert real_capacity(cfg) == 3000
    cfg, _ = resolve({"algo": "sac", "total_steps": 3000, "buffer_size": 500})
    assert real_capacity(cfg) == 500
