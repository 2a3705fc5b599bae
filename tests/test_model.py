"""Model ensemble, imagination, schedule, model-buffer eviction and the real-data ratio."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reset_envs
from jaxdyna import buffer as rb
from jaxdyna import model as mdl
from jaxdyna.config import as_arrays, resolve
from jaxdyna.envs import Transition, env_step, make_env
from jaxdyna.train import mix_batches, n_real_rows


def _linear_system(key, n, obs=3, act=1, scale=1.0):
    k1, k2, k3 = jax.random.split(key, 3)
    A = jnp.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 0.7]])
    B = jnp.array([[0.5], [-0.3], [0.2]])
    s = scale * jax.random.uniform(k1, (n, obs), minval=-1, maxval=1)
    a = scale * jax.random.uniform(k2, (n, act), minval=-1, maxval=1)
    s2 = s @ A.T + a @ B.T + 0.01 * jax.random.normal(k3, (n, obs))
    r = s[:, 0] - 0.5 * a[:, 0]
    return Transition(obs=s, action=a, reward=r, next_obs=s2, terminal=jnp.zeros(n))


@pytest.fixture(scope="module")
def fitted():
    cfg, hp = resolve({"algo": "mbpo", "env": "inverted_pendulum", "ensemble_size": 5, "num_elites": 3,
                       "model_hidden": [64, 64], "model_max_train": 2000, "model_batch_size": 128,
                       "model_max_epochs": 60, "termination": "never"})
    ens = mdl.make_ensemble(cfg, 3, 1)
    model = mdl.model_init(ens, jax.random.PRNGKey(0))
    data = _linear_system(jax.random.PRNGKey(1), 2000)
    buf = rb.buffer_add(rb.buffer_init(jax.tree_util.tree_map(lambda x: x[0], data), 4000), data)
    fit = jax.jit(lambda m, b, k, h: mdl.fit_model(cfg, ens, m, b, k, h))
    model, metrics = fit(model, buf, jax.random.PRNGKey(2), as_arrays(hp))
    return cfg, ens, model, metrics


def test_ensemble_fits_a_linear_system(fitted):
    cfg, ens, model, metrics = fitted
    # holdout MSE in target units (MBPO normalises inputs only); the noise floor is 1e-4 and
    # predicting the mean would score ~0.2
    assert float(metrics["model_holdout_loss"]) < 0.005, metrics
    assert 1 <= int(metrics["model_epochs"]) <= cfg.model_max_epochs
    test = _linear_system(jax.random.PRNGKey(3), 500)
    nxt, rew, _ = mdl.make_dynamics(cfg, ens, None).step(model, test.obs, test.action, jax.random.PRNGKey(4))
    assert float(jnp.sqrt(jnp.mean((nxt - test.next_obs) ** 2))) < 0.05
    assert float(jnp.sqrt(jnp.mean((rew - test.reward) ** 2))) < 0.1
    elites = np.asarray(model.elites)
    assert len(set(elites.tolist())) == 3
    assert np.all(np.asarray(model.holdout_loss)[elites].max() <= np.delete(np.asarray(model.holdout_loss), elites).min())


def test_step_deals_rows_to_elites_in_equal_shares(fitted):
    """Every row is one elite's own prediction, and the elites share the rows equally."""
    cfg, ens, model, _ = fitted
    quiet = {**model.params, "max_logvar": jnp.full_like(model.params["max_logvar"], -40.0),
             "min_logvar": jnp.full_like(model.params["min_logvar"], -50.0)}     # noise ~ 1e-9
    model = model._replace(params=quiet) if hasattr(model, "_replace") else model.replace(params=quiet)
    test = _linear_system(jax.random.PRNGKey(6), 500)
    nxt, rew, _ = mdl.make_dynamics(cfg, ens, None).step(model, test.obs, test.action, jax.random.PRNGKey(7))
    mean, _ = mdl.ensemble_forward(model.params, mdl.normalised_inputs(model, test.obs, test.action))  # [E, B, out]
    got = jnp.concatenate([nxt - test.obs, rew[:, None]], axis=1)
    dist = jnp.max(jnp.abs(mean - got[None]), axis=-1)                               # [E, B]
    member = np.asarray(jnp.argmin(dist, axis=0))
    assert float(jnp.max(jnp.min(dist, axis=0))) < 1e-5                             # exactly one member's output
    counts = np.bincount(member, minlength=ens.members)
    assert set(np.nonzero(counts)[0]) == set(np.asarray(model.elites).tolist())
    assert counts.sum() == 500 and counts[counts > 0].min() >= 500 // 3 - 1 and counts.max() <= -(-500 // 3)


def test_predicted_variance_larger_off_distribution(fitted):
    _, ens, model, _ = fitted
    on = _linear_system(jax.random.PRNGKey(5), 500)
    off = _linear_system(jax.random.PRNGKey(5), 500, scale=6.0)
    off = off._replace(obs=jnp.abs(off.obs) + 3.0)          # well outside the [-1, 1] training box
    std_on = float(jnp.mean(mdl.predictive_std(ens, model, on.obs, on.action)))
    std_off = float(jnp.mean(mdl.predictive_std(ens, model, off.obs, off.action)))
    assert std_off > 3 * std_on, (std_on, std_off)


def _start_states(env, n, key):
    es = reset_envs(env, key, n)
    return es, Transition(obs=es.brax.obs, action=jnp.zeros((n, env.action_size)), reward=jnp.zeros(n),
                          next_obs=es.brax.obs, terminal=jnp.zeros(n))


def test_oracle_rollout_equals_real_env_rollout():
    cfg, _ = resolve({"algo": "mbpo", "env": "inverted_pendulum", "model": "oracle", "max_rollout_length": 5,
                      "rollout_max_len": 5, "action_source": "policy"})
    env = make_env(cfg.env, cfg.backend)
    es, start = _start_states(env, 4, jax.random.PRNGKey(0))
    policy = lambda obs, key: jnp.tanh(obs[:, :1] * 3.0 + obs[:, 1:2] * 5.0)  # deterministic
    dyn = mdl.make_dynamics(cfg, None, env)
    trans, valid = jax.jit(lambda s: mdl.imagine(cfg, dyn, None, s, lambda o, k: (policy(o, k), jnp.zeros(len(o))),
                                                 jnp.int32(5), jax.random.PRNGKey(1)))(start)
    real = []
    step = jax.jit(lambda e, a: env_step(env, e, a, 1000))
    for _ in range(5):
        es, tr, _ = step(es, policy(es.brax.obs, None))
        real.append(tr)
    real_next = jnp.stack([t.next_obs for t in real]).reshape(-1, 4)
    np.testing.assert_allclose(np.asarray(trans.next_obs), np.asarray(real_next), atol=1e-5)
    np.testing.assert_allclose(np.asarray(trans.reward), np.asarray(jnp.stack([t.reward for t in real]).reshape(-1)))
    assert bool(jnp.all(valid))


def test_rollouts_masked_after_termination_and_beyond_length():
    cfg, _ = resolve({"algo": "mbpo", "env": "inverted_pendulum", "model": "oracle", "max_rollout_length": 40,
                      "rollout_max_len": 40})
    env = make_env(cfg.env, cfg.backend)
    _, start = _start_states(env, 3, jax.random.PRNGKey(0))
    push = lambda obs, key: (jnp.ones((obs.shape[0], 1)), jnp.zeros(obs.shape[0]))   # the pole falls within ~20 steps
    dyn = mdl.make_dynamics(cfg, None, env)
    run = jax.jit(lambda length: mdl.imagine(cfg, dyn, None, start, push, length, jax.random.PRNGKey(1)))
    trans, valid = run(jnp.int32(40))
    term = np.asarray(trans.terminal).reshape(40, 3)
    valid = np.asarray(valid).reshape(40, 3)
    for j in range(3):
        t_end = int(np.argmax(term[:, j]))
        assert term[t_end, j] == 1 and t_end < 39
        assert valid[: t_end + 1, j].all() and not valid[t_end + 1:, j].any()
    _, valid = run(jnp.int32(2))
    valid = np.asarray(valid).reshape(40, 3)
    assert valid[:2].all() and not valid[2:].any()


@pytest.mark.slow
def test_rollout_stops_at_traced_length_with_the_same_steps():
    """`imagine` computes only `length` of the static maximum's steps; what it keeps is exactly the
    full-horizon rollout's first `length` steps (same keys per step), on hopper with a learned
    ensemble (random weights) and learned-termination-free known rules."""
    cfg, _ = resolve({"algo": "mbpo", "env": "hopper", "ensemble_size": 3, "num_elites": 2,
                      "model_hidden": [16, 16], "max_rollout_length": 5, "rollout_max_len": 5})
    env = make_env(cfg.env, cfg.backend)
    _, start = _start_states(env, 6, jax.random.PRNGKey(0))
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size)
    model = mdl.model_init(ens, jax.random.PRNGKey(3))
    dyn = mdl.make_dynamics(cfg, ens, env)
    policy = lambda o, k: (jnp.tanh(o[:, :env.action_size] + jax.random.normal(k, (o.shape[0], env.action_size))),
                           jnp.zeros(o.shape[0]))
    key = jax.random.PRNGKey(1)
    full = jax.jit(lambda: mdl.rollout(lambda o, a, k: dyn.step(model, o, a, k), lambda o, k, t: policy(o, k),
                                       start.obs, key, 5))()
    imagine = jax.jit(lambda n: mdl.imagine(cfg, dyn, model, start, policy, n, key))
    for n in (1, 3, 5):
        trans, valid = imagine(jnp.int32(n))
        valid = np.asarray(valid).reshape(5, 6)
        alive = np.asarray(full.cont[:-1]) > 0.5
        np.testing.assert_array_equal(valid, alive & (np.arange(5)[:, None] < n))
        for got, want in ((trans.next_obs, full.obs[1:]), (trans.obs, full.obs[:-1]), (trans.reward, full.reward),
                          (trans.terminal, alive * (1.0 - np.asarray(full.cont[1:])))):
            got = np.asarray(got).reshape((5, 6) + got.shape[1:])
            np.testing.assert_array_equal(got[valid], np.asarray(want)[valid])
        assert valid[:n].any()                                    # something was compared


def test_rollout_schedule_counts_epochs_after_warmup():
    """MBPO's `_set_rollout_length`: int(min + clip((epoch - start) / (end - start)) * (max - min)),
    epoch = the index of the training epoch, counted from the end of the initial exploration."""
    _, hp = resolve({"algo": "mbpo", "max_rollout_length": 15, "rollout_start_epoch": 20, "rollout_end_epoch": 150,
                     "rollout_min_len": 1, "rollout_max_len": 15, "epoch_length": 1000})
    hp, warmup = as_arrays(hp), 5000
    length = lambda steps: int(mdl.rollout_length(hp, jnp.int32(steps), warmup))
    assert [length(warmup + e * 1000) for e in (0, 20, 85, 145, 400)] == [1, 1, 8, 14, 15]
    # 1 + (85-20)/130*14 = 8.0; epoch 145: 1 + 125/130*14 = 14.46 -> 14 (counting warm-up steps gave 15)
    assert length(warmup + 149_999) == 14 and length(warmup + 150_000) == 15   # the maximum from end_epoch on


def _round(buf, sizes, value, n_valid, width=10):
    trans = Transition(obs=jnp.full((width, 1), value), action=jnp.zeros((width, 1)), reward=jnp.full(width, value),
                       next_obs=jnp.zeros((width, 1)), terminal=jnp.zeros(width))
    return mdl.evict_and_add(buf, sizes, trans, jnp.arange(width) < n_valid)


def _live(buf):
    idx = (buf.ptr - 1 - np.arange(int(buf.size))) % buf.capacity
    return sorted(np.asarray(buf.data.reward)[idx].tolist())


@pytest.mark.parametrize("retain", [1, 3])
def test_model_buffer_eviction(retain):
    example = Transition(obs=jnp.zeros(1), action=jnp.zeros(1), reward=jnp.zeros(()), next_obs=jnp.zeros(1),
                         terminal=jnp.zeros(()))
    buf, sizes = rb.buffer_init(example, 10 * retain), jnp.zeros(retain, jnp.int32)
    counts = [7, 10, 4, 9, 6]
    for i, c in enumerate(counts):
        buf, sizes = _round(buf, sizes, float(i), c)
        kept = list(range(max(0, i - retain + 1), i + 1))       # exactly the last `retain` rounds
        assert _live(buf) == sorted(float(r) for r in kept for _ in range(counts[r]))


@pytest.mark.parametrize("ratio, expected", [(0.0, 0), (0.05, 12), (0.1, 25), (0.5, 128), (1.0, 256)])
def test_batch_composition_matches_real_ratio(ratio, expected):
    # MBPO: env_batch_size = int(batch_size * real_ratio), so 0.05 * 256 = 12.8 gives 12 real rows
    n = int(n_real_rows(jnp.float32(ratio), 256, jnp.int32(1000)))
    assert n == expected
    real = Transition(obs=jnp.zeros((256, 1)), action=jnp.zeros((256, 1)), reward=jnp.ones(256),
                      next_obs=jnp.zeros((256, 1)), terminal=jnp.zeros(256))
    mixed = mix_batches(real, real._replace(reward=-jnp.ones(256)), n)
    assert int(jnp.sum(mixed.reward > 0)) == expected
    assert int(n_real_rows(jnp.float32(ratio), 256, jnp.int32(0))) == 256   # empty model buffer: all real


def test_weight_decay_is_half_c_times_squared_norm_per_layer():
    """MBPO's FC.get_decays: c_l * tf.nn.l2_loss(W_l) = 0.5 * c_l * ||W_l||^2, one c per layer."""
    cfg, _ = resolve({"algo": "mbpo", "model_hidden": [8, 8], "ensemble_size": 2, "num_elites": 1})
    ens = mdl.make_ensemble(cfg, 3, 1)
    assert ens.weight_decay == (2.5e-5, 5e-5, 1e-4)                  # MBPO's coefficients, output last
    model = mdl.model_init(ens, jax.random.PRNGKey(0))
    x, y, w = jnp.ones((2, 4, 4)), jnp.zeros((2, 4, 4)), jnp.ones((2, 4))
    decay = (1.0, 2.0, 3.0)
    extra = mdl._nll(model.params, x, y, w, decay) - mdl._nll(model.params, x, y, w, (0.0, 0.0, 0.0))
    expected = sum(0.5 * c * float(jnp.sum(W ** 2)) for c, (W, _) in zip(decay, model.params["layers"]))
    np.testing.assert_allclose(float(extra), expected, rtol=1e-4)


def _fit(cfg, data, lr=1e-3, seed=2):
    _, hp = resolve({"algo": "mbpo", "model_lr": lr})
    ens = mdl.make_ensemble(cfg, 3, 1)
    model = mdl.model_init(ens, jax.random.PRNGKey(0))
    buf = rb.buffer_add(rb.buffer_init(jax.tree_util.tree_map(lambda x: x[0], data), 4000), data)
    return ens, *jax.jit(lambda m, b, k, h: mdl.fit_model(cfg, ens, m, b, k, h))(model, buf, jax.random.PRNGKey(seed),
                                                                                as_arrays(hp))


def test_early_stopping_counts_like_mbpo():
    """Best starts at 1e10 (the first epoch always improves); stop once MORE than `model_patience`
    epochs pass without a >1% gain: with a frozen model (lr ~ 0) that is 1 + (patience + 1) epochs."""
    cfg, _ = resolve({"algo": "mbpo", "ensemble_size": 2, "num_elites": 1, "model_hidden": [8],
                      "model_max_train": 500, "model_batch_size": 100, "model_max_epochs": 50,
                      "model_patience": 5, "termination": "never"})
    _, _, metrics = _fit(cfg, _linear_system(jax.random.PRNGKey(1), 500), lr=1e-20)
    assert int(metrics["model_epochs"]) == 1 + 6


def test_holdout_scored_in_blocks_gives_the_all_at_once_loss(fitted):
    """`_holdout_mse` scores `rows` rows at a time: the same loss per member as all rows at once, no
    block starts past the live rows (NaN inputs there are never read), and a last block that would
    pass the holdout's end is moved back to end at it."""
    _, _, model, _ = fitted
    h, n, rows = 1000, 700, 128
    k1, k2 = jax.random.split(jax.random.PRNGKey(5))
    x, y = jax.random.normal(k1, (h, 4)), 0.1 * jax.random.normal(k2, (h, 4))
    mask = (jnp.arange(h) < n).astype(jnp.float32)
    loss = jax.jit(mdl._holdout_mse, static_argnums=5)
    whole = loss(model.params, x, y, mask, n, h)
    np.testing.assert_allclose(loss(model.params, x, y, mask, n, rows), whole, rtol=1e-6)
    unread = -(-n // rows) * rows                                    # 768: the end of the last block
    blocked = loss(model.params, x.at[unread:].set(jnp.nan), y, mask, n, rows)
    np.testing.assert_allclose(blocked, whole, rtol=1e-6)
    assert np.all(np.isnan(loss(model.params, x.at[unread:].set(jnp.nan), y, mask, n, h)))
    ones = jnp.ones(h)                                                # every row live: 8 blocks, the last moved back
    np.testing.assert_allclose(loss(model.params, x, y, ones, h, rows), loss(model.params, x, y, ones, h, h),
                               rtol=1e-6)


def test_fit_with_blocked_holdout_keeps_the_same_snapshots(monkeypatch):
    """A refit whose holdout (600 rows) is scored in two 300-row blocks on a CPU keeps the same
    weights, epochs and elites as one that scores it at once."""
    cfg, _ = resolve({"algo": "mbpo", "ensemble_size": 3, "num_elites": 2, "model_hidden": [16],
                      "model_max_train": 3000, "model_batch_size": 256, "model_max_epochs": 8,
                      "termination": "never"})
    data = _linear_system(jax.random.PRNGKey(1), 3000)
    assert mdl.holdout_block_rows(600) == (300 if jax.default_backend() == "cpu" else 600)
    _, blocked, m_blocked = _fit(cfg, data)
    monkeypatch.setattr(mdl, "holdout_block_rows", lambda h_max: h_max)
    _, whole, m_whole = _fit(cfg, data)
    same = lambda a, b: jax.tree_util.tree_all(jax.tree_util.tree_map(lambda p, q: bool(jnp.all(p == q)), a, b))
    assert same(blocked.params, whole.params) and same(blocked.elites, whole.elites)
    assert int(m_blocked["model_epochs"]) == int(m_whole["model_epochs"])
    np.testing.assert_allclose(blocked.holdout_loss, whole.holdout_loss, rtol=1e-6)


def test_holdout_loss_and_predictions_in_target_units():
    """Only inputs are normalised (MBPO, mbrl-lib): with targets of scale ~100 the holdout MSE is the
    raw-unit MSE of the mean prediction, and predictions come out in target units."""
    cfg, _ = resolve({"algo": "mbpo", "ensemble_size": 3, "num_elites": 2, "model_hidden": [64, 64],
                      "model_max_train": 2000, "model_batch_size": 128, "model_max_epochs": 30,
                      "termination": "never"})
    big = lambda t: t._replace(next_obs=t.obs + 100.0 * (t.next_obs - t.obs), reward=100.0 * t.reward)
    ens, model, metrics = _fit(cfg, big(_linear_system(jax.random.PRNGKey(1), 2000)))
    test = big(_linear_system(jax.random.PRNGKey(3), 1000))
    mean, _ = mdl.ensemble_forward(model.params, mdl.normalised_inputs(model, test.obs, test.action))
    raw = jnp.mean((mean - mdl._targets(ens, test)) ** 2, axis=(1, 2))[model.elites]
    ratio = float(metrics["model_holdout_loss"]) / float(jnp.mean(raw))
    assert 0.5 < ratio < 2.0, (float(metrics["model_holdout_loss"]), raw)


def test_bfloat16_matmuls_fit_as_well_and_stay_close_to_float32(fitted):
    """model_matmul=bfloat16 feeds every ensemble matmul bf16 inputs summed in float32: the same
    fitted weights predict within bf16 rounding of the float32 forward, the products really are
    bf16 (the outputs differ), and a bf16 fit reaches the same holdout accuracy."""
    cfg, ens, model, metrics = fitted
    test = _linear_system(jax.random.PRNGKey(3), 500)
    x = mdl.normalised_inputs(model, test.obs, test.action)
    m32, lv32 = mdl.ensemble_forward(model.params, x)
    m16, lv16 = mdl.ensemble_forward(model.params, x, "bfloat16")
    assert m16.dtype == jnp.float32 and lv16.dtype == jnp.float32
    gap = float(jnp.max(jnp.abs(m16 - m32)))
    assert 0.0 < gap < 0.02 * float(jnp.max(jnp.abs(m32))), gap

    cfg16 = dataclasses.replace(cfg, model_matmul="bfloat16")
    ens16 = mdl.make_ensemble(cfg16, 3, 1)
    assert ens16.matmul_dtype == "bfloat16"
    data = _linear_system(jax.random.PRNGKey(1), 2000)
    buf = rb.buffer_add(rb.buffer_init(jax.tree_util.tree_map(lambda x: x[0], data), 4000), data)
    _, hp = resolve({"algo": "mbpo", "env": "inverted_pendulum"})
    model16, metrics16 = jax.jit(lambda m, b, k, h: mdl.fit_model(cfg16, ens16, m, b, k, h))(
        mdl.model_init(ens16, jax.random.PRNGKey(0)), buf, jax.random.PRNGKey(2), as_arrays(hp))
    assert jax.tree_util.tree_leaves(model16.params)[0].dtype == jnp.float32     # master weights stay f32
    assert float(metrics16["model_holdout_loss"]) < 0.005, metrics16
