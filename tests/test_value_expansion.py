"""MVE and STEVE targets: H = 0 is SAC, soft H-step targets equal returns computed by hand on the
real env (the oracle model), STEVE's weighting, and learning on a tiny budget."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reset_envs
from jaxdyna import model as mdl
from jaxdyna import value_expansion as vx
from jaxdyna.config import as_arrays, resolve
from jaxdyna.envs import env_reset, env_step, make_env, oracle_step
from jaxdyna.networks import sample_action
from jaxdyna.sac import agent_init, make_nets, sac_target
from jaxdyna.sweep import run_sweep


@functools.lru_cache(maxsize=None)
def _real_batch():
    """64 real transitions (s_0, a_0, r_0, s_1) of inverted_pendulum, and the env state at s_1."""
    env = make_env("inverted_pendulum")
    act = jax.random.uniform(jax.random.PRNGKey(3), (64, 1), minval=-1, maxval=1)
    es, tr, _ = jax.jit(lambda k: env_step(env, env_reset(env, k, 64), act, 1000))(jax.random.PRNGKey(2))
    assert np.array_equal(np.asarray(es.brax.obs), np.asarray(tr.next_obs))     # no resets: es holds s_1
    return tr._replace(terminal=tr.terminal.at[:5].set(1.0)), es


def _setup(**over):
    cfg, hp = resolve({"algo": "mve", "env": "inverted_pendulum", "actor_hidden": [32], "critic_hidden": [32],
                       "ensemble_size": 3, "num_elites": 2, "model_hidden": [16], **over})
    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)
    hp = as_arrays(hp)
    agent = agent_init(nets, jax.random.PRNGKey(0), env.observation_size, hp)
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size) if cfg.model == "learned" else None
    model = mdl.model_init(ens, jax.random.PRNGKey(1)) if ens else None
    dyn = mdl.make_dynamics(cfg, ens, env)
    tr, es = _real_batch()
    return cfg, hp, env, nets, agent, dyn, model, tr, es


_ENV_STEP = jax.jit(jax.vmap(make_env("inverted_pendulum").step))


@functools.lru_cache(maxsize=None)
def _compiled_target(cfg):
    """The jitted target function of `cfg` (the effective horizon is traced: one compile per config)."""
    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size) if cfg.model == "learned" else None
    dyn = mdl.make_dynamics(cfg, ens, env)
    return jax.jit(lambda agent, model, batch, key, hp: vx.make_target_fn(cfg, dyn, model)(nets, agent, batch, key, hp))


@pytest.mark.parametrize("algo, value_horizon", [("mve", 0), ("mve", 3), ("steve", 0), ("steve", 3)])
def test_horizon_zero_is_exactly_the_sac_target(algo, value_horizon):
    # the configs of the hand-computed tests below (one compile each), at an effective horizon of 0
    cfg, hp, env, nets, agent, dyn, model, batch, _ = _setup(algo=algo, model="oracle", value_horizon=value_horizon,
                                                             horizon=0, td_k=algo == "mve")
    key = jax.random.PRNGKey(9)
    ve = _compiled_target(cfg)(agent, model, batch, key, hp)
    sac = jax.jit(lambda agent, batch, key, hp: sac_target(nets, agent, batch, key, hp))(agent, batch, key, hp)
    B = batch.reward.shape[0]
    if algo == "mve":
        np.testing.assert_array_equal(np.asarray(ve.target[:B]), np.asarray(sac.target))
    else:   # the same formula; XLA fuses STEVE's larger program differently: equal to a float ulp or two
        np.testing.assert_allclose(np.asarray(ve.target), np.asarray(sac.target), rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(ve.weight[B:]) == 0)          # TD-k: no imagined rows at H = 0


def test_steve_mean_heads_at_horizon_zero_averages_the_heads():
    """The paper's form (`steve_heads: mean`) is not SAC at H = 0: it averages the target heads."""
    cfg, hp, env, nets, agent, dyn, model, batch, _ = _setup(algo="steve", value_horizon=2, horizon=0,
                                                             steve_heads="mean")
    key = jax.random.PRNGKey(9)
    t = vx.make_target_fn(cfg, dyn, model)(nets, agent, batch, key, hp).target
    a, logp = sample_action(nets.actor, agent.actor, batch.next_obs, key)
    v = nets.critic.apply(agent.target_critic, batch.next_obs, a).mean(-1) - jnp.exp(agent.log_alpha) * logp
    np.testing.assert_allclose(np.asarray(t), np.asarray(batch.reward + hp.gamma * (1 - batch.terminal) * v),
                               rtol=1e-5, atol=1e-5)


# --- soft H-step targets against a return computed by hand on the real env ------------------
def _by_hand(nets, agent, hp, batch, es, key, H, members_axis):
    """Step the real Brax env H steps from s_1 with the policy's sampled actions (the same keys
    as the rollout: per step split(k_roll, H)[i] -> (k_act, k_model)); return per step the
    reward, terminal, log pi and the soft value of every target Q head at s_0..s_H."""
    alpha = float(jnp.exp(agent.log_alpha))
    k_roll, k_vals = jax.random.split(jax.random.fold_in(key, 1))
    step = _ENV_STEP
    expand = (lambda x: x[None]) if members_axis else (lambda x: x)

    def head_values(obs, k):
        a, logp = sample_action(nets.actor, agent.actor, expand(obs), k)
        q = nets.critic.apply(agent.target_critic, expand(obs), a)
        return np.asarray((q - alpha * logp[..., None]).reshape(q.shape[-2:]))          # [B, Q]

    state, rews, dones, logps, vals = es.brax, [], [], [], []
    vals.append(head_values(state.obs, key) if not members_axis else None)
    for i, k in enumerate(jax.random.split(k_roll, H)):
        k_act, _ = jax.random.split(k)
        a, logp = sample_action(nets.actor, agent.actor, expand(state.obs), k_act)
        state = step(state, a.reshape(-1, 1))
        rews.append(np.asarray(state.reward, np.float64))
        dones.append(np.asarray(state.done, np.float64))
        logps.append(np.asarray(logp, np.float64).reshape(-1))
        vals.append(head_values(state.obs, jax.random.split(k_vals, H)[i]))
    return alpha, np.array(rews), np.array(dones), np.array(logps), vals


def _soft_sum(alpha, scale, gamma, rews, dones, logps, h, start=0, first_entropy=True):
    """sum_{start<=i<h} gamma^(i-start) alive_i (scale r_i - alpha log pi_i) and alive_h, step by step
    (without the entropy term of the first action when `first_entropy` is false)."""
    total, alive = np.zeros(rews.shape[1]), np.ones(rews.shape[1])
    for i in range(start, h):
        entropy = alpha * logps[i] if (i > start or first_entropy) else 0.0
        total += gamma ** (i - start) * alive * (scale * rews[i] - entropy)
        alive = alive * (1.0 - dones[i])
    return total, alive


@pytest.mark.parametrize("horizon", [3, 2])
def test_mve_target_is_the_soft_return_by_hand(horizon):
    H = 3
    cfg, hp, env, nets, agent, dyn, model, batch, es = _setup(
        model="oracle", value_horizon=H, horizon=horizon, td_k=True, gamma=0.9, reward_scale=2.0, init_alpha=0.7)
    assert cfg == _setup(model="oracle", value_horizon=H, horizon=0, td_k=True)[0]     # shares one compile
    key = jax.random.PRNGKey(11)
    ct = _compiled_target(cfg)(agent, model, batch, key, hp)
    alpha, rews, dones, logps, vals = _by_hand(nets, agent, hp, batch, es, key, H, members_axis=False)
    v = lambda i: vals[i].min(-1)                       # SAC's soft value: the minimum over heads
    g, s = float(hp.gamma), float(hp.reward_scale)
    inner, alive = _soft_sum(alpha, s, g, rews, dones, logps, horizon)
    inner = inner + g ** horizon * alive * v(horizon)
    expected = s * np.asarray(batch.reward) + g * (1 - np.asarray(batch.terminal)) * inner
    B = batch.reward.shape[0]
    np.testing.assert_allclose(np.asarray(ct.target[:B]), expected, rtol=1e-5, atol=1e-4)
    # TD-k: imagined (s_i, a_i), i < h, regress on s r_i + sum_{i<j<h} gamma^(j-i) alive (s r_j - alpha log pi_j)
    # + gamma^(h-i) alive V(s_h), without the entropy term of a_i itself
    for i in range(H):
        rows = slice(B * (i + 1), B * (i + 2))
        if i >= horizon:
            assert np.all(np.asarray(ct.weight[rows]) == 0)
            continue
        t_i, alive_i = _soft_sum(alpha, s, g, rews, dones, logps, horizon, start=i, first_entropy=False)
        t_i = t_i + g ** (horizon - i) * alive_i * v(horizon)
        w = np.asarray(ct.weight[rows]) > 0
        np.testing.assert_allclose(np.asarray(ct.target[rows])[w], t_i[w], rtol=1e-5, atol=1e-4)
        alive_before = np.prod(1 - dones[:i], axis=0) * (1 - np.asarray(batch.terminal))
        np.testing.assert_array_equal(w, alive_before > 0)


@pytest.mark.parametrize("heads", ["min", "mean"])
def test_steve_target_is_the_inverse_variance_mix_of_soft_returns_by_hand(heads):
    H = 3
    cfg, hp, env, nets, agent, dyn, model, batch, es = _setup(
        algo="steve", model="oracle", value_horizon=H, horizon=H, gamma=0.9, reward_scale=2.0, init_alpha=0.7,
        steve_heads=heads)
    key = jax.random.PRNGKey(12)
    ct = _compiled_target(cfg)(agent, model, batch, key, hp)
    alpha, rews, dones, logps, vals = _by_hand(nets, agent, hp, batch, es, key, H, members_axis=True)
    a0, logp0 = sample_action(nets.actor, agent.actor, batch.next_obs, key)      # horizon 0: SAC's sample
    vals[0] = np.asarray(nets.critic.apply(agent.target_critic, batch.next_obs, a0) - alpha * logp0[:, None])
    g, s = float(hp.gamma), float(hp.reward_scale)
    r0, d0 = s * np.asarray(batch.reward, np.float64), 1 - np.asarray(batch.terminal, np.float64)
    cands = []                                                          # [h][B, Q]
    for h in range(H + 1):
        partial, alive = _soft_sum(alpha, s, g, rews, dones, logps, h)
        cands.append(r0[:, None] + g * d0[:, None] * (partial[:, None] + g ** h * alive[:, None] * vals[h]))
    cands = np.array(cands)
    inv = 1.0 / (cands.var(axis=-1) + 1e-8)
    point = cands.min(-1) if heads == "min" else cands.mean(-1)
    expected = np.sum(inv / inv.sum(0) * point, axis=0)
    np.testing.assert_allclose(np.asarray(ct.target), expected, rtol=1e-4, atol=1e-3)


def test_oracle_h_step_target_is_true_discounted_return_plus_bootstrap():
    H, gamma = 4, 0.9
    env = make_env("inverted_pendulum")
    es = reset_envs(env, jax.random.PRNGKey(0), 8)
    policy = lambda o, k: jnp.tanh(2.0 * o[..., 1:2] + 0.5 * o[..., 3:4])      # deterministic
    value = lambda o: 10.0 - 50.0 * o[..., 1] ** 2
    step = lambda o, a, k: oracle_step(env, "inverted_pendulum", o, a)
    path = jax.jit(lambda o: mdl.rollout(step, lambda o, k, _t: (policy(o, k), jnp.zeros(o.shape[0])), o,
                                         jax.random.PRNGKey(1), H))(es.brax.obs)
    values = value(path.obs)
    g0 = vx.expanded_returns(path.reward, path.cont, values, gamma, jnp.int32(H))[0]
    # the same H steps in the real env
    real_step = jax.jit(lambda e, a: env_step(env, e, a, 1000))
    ret, alive = jnp.zeros(8), jnp.ones(8)
    for i in range(H):
        es, tr, _ = real_step(es, policy(es.brax.obs, None))
        ret += gamma ** i * alive * tr.reward
        alive *= 1.0 - tr.terminal
    expected = ret + gamma ** H * alive * value(tr.next_obs)
    np.testing.assert_allclose(np.asarray(g0), np.asarray(expected), rtol=1e-5, atol=1e-4)
    # a shorter effective horizon bootstraps earlier
    g2 = vx.expanded_returns(path.reward, path.cont, values, gamma, jnp.int32(2))[0]
    np.testing.assert_allclose(np.asarray(g2), np.asarray(path.reward[0] + gamma * path.cont[1] * path.reward[1]
                                                          + gamma ** 2 * path.cont[2] * values[2]), rtol=1e-6)


def test_steve_weights_sum_to_one_and_favour_low_variance():
    key = jax.random.PRNGKey(0)
    cand = 5.0 + jax.random.normal(key, (4, 6, 3)) * jnp.array([3.0, 2.0, 1e-4, 4.0])[:, None, None]
    w = vx.inverse_variance_weights(cand, jnp.int32(3))
    np.testing.assert_allclose(np.asarray(w.sum(0)), 1.0, rtol=1e-6)
    assert np.all(np.asarray(w[2]) > 0.999)
    w1 = vx.inverse_variance_weights(cand, jnp.int32(1))            # horizons beyond h get no weight
    assert np.all(np.asarray(w1[2:]) == 0) and np.allclose(np.asarray(w1.sum(0)), 1.0)


def test_steve_target_runs_with_learned_ensemble():
    cfg, hp, env, nets, agent, dyn, model, batch, _ = _setup(algo="steve", value_horizon=2, horizon=2)
    t = jax.jit(lambda: vx.make_steve_target(cfg, dyn, model)(nets, agent, batch, jax.random.PRNGKey(4), hp))()
    assert t.target.shape == (64,) and bool(jnp.all(jnp.isfinite(t.target)))


@pytest.mark.parametrize("algo, extra", [("mve", {"td_k": True}), ("steve", {})])
@pytest.mark.slow
def test_learns_on_inverted_pendulum(algo, extra, tiny, random_return):
    cfg, hp = resolve({**tiny, "algo": algo, "total_steps": 2500, "warmup_steps": 500, "eval_every": 500,
                       "buffer_size": 5000, "target_entropy": -0.05, "value_horizon": 2, "horizon": 2,
                       "ensemble_size": 3, "num_elites": 2, "model_hidden": [32, 32], "model_train_freq": 250,
                       "model_max_train": 3000, "model_max_epochs": 5, "model_batch_size": 128, **extra})
    res = run_sweep(cfg, [hp], [0], batching="map")
    final = res.metrics["eval_return"][:, -1]
    print(algo, "random", random_return, "curve", res.metrics["eval_return"])
    assert np.all(final > 5 * random_return), (final, random_return)
