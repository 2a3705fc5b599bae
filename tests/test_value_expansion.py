"""MVE and STEVE targets: H = 0 is SAC, oracle targets are true returns, STEVE's weighting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyna import model as mdl
from jaxdyna import value_expansion as vx
from jaxdyna.config import as_arrays, resolve
from jaxdyna.envs import Transition, env_reset, env_step, make_env, oracle_step
from jaxdyna.sac import agent_init, make_nets, sac_target
from jaxdyna.sweep import run_sweep


def _setup(**over):
    cfg, hp = resolve({"algo": "mve", "env": "inverted_pendulum", "actor_hidden": [32], "critic_hidden": [32],
                       "ensemble_size": 3, "num_elites": 2, "model_hidden": [16], **over})
    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)
    hp = as_arrays(hp)
    agent = agent_init(nets, jax.random.PRNGKey(0), env.observation_size, hp)
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size) if cfg.model == "learned" else None
    model = mdl.model_init(cfg, ens, jax.random.PRNGKey(1), env.observation_size, env.action_size) if ens else None
    es = env_reset(env, jax.random.PRNGKey(2), 64)
    act = jax.random.uniform(jax.random.PRNGKey(3), (64, 1), minval=-1, maxval=1)
    _, tr, _ = env_step(env, es, act, 1000)
    tr = tr._replace(terminal=tr.terminal.at[:5].set(1.0))
    return cfg, hp, env, nets, agent, ens, model, tr


@pytest.mark.parametrize("value_horizon", [0, 3])
def test_horizon_zero_is_exactly_the_sac_target(value_horizon):
    cfg, hp, env, nets, agent, ens, model, batch = _setup(value_horizon=value_horizon, horizon=0)
    key = jax.random.PRNGKey(9)
    mve = jax.jit(lambda: vx.make_mve_target(cfg, ens, model, env)(nets, agent, batch, key, hp))()
    sac = jax.jit(lambda: sac_target(nets, agent, batch, key, hp))()
    np.testing.assert_array_equal(np.asarray(mve.target), np.asarray(sac.target))


def test_oracle_h_step_target_is_true_discounted_return_plus_bootstrap():
    H, gamma = 4, 0.9
    env = make_env("inverted_pendulum")
    es = env_reset(env, jax.random.PRNGKey(0), 8)
    policy = lambda o, k: jnp.tanh(2.0 * o[..., 1:2] + 0.5 * o[..., 3:4])      # deterministic
    value = lambda o: 10.0 - 50.0 * o[..., 1] ** 2
    step = lambda o, a, k: oracle_step(env, "inverted_pendulum", o, a)
    obs, acts, rews, cont = jax.jit(lambda o: mdl.rollout(step, lambda o, k, _t: policy(o, k), o, jax.random.PRNGKey(1), H))(es.brax.obs)
    values = value(obs)
    g0 = vx.expanded_returns(rews, cont, values, gamma, jnp.int32(H))[0]
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
    g2 = vx.expanded_returns(rews, cont, values, gamma, jnp.int32(2))[0]
    np.testing.assert_allclose(np.asarray(g2), np.asarray(rews[0] + gamma * cont[1] * rews[1]
                                                          + gamma ** 2 * cont[2] * values[2]), rtol=1e-6)


def test_steve_weights_sum_to_one_and_favour_low_variance():
    key = jax.random.PRNGKey(0)
    cand = 5.0 + jax.random.normal(key, (4, 6, 3)) * jnp.array([3.0, 2.0, 1e-4, 4.0])[:, None, None]
    w, mean = vx.inverse_variance_weights(cand, jnp.int32(3))
    np.testing.assert_allclose(np.asarray(w.sum(0)), 1.0, rtol=1e-6)
    assert np.all(np.asarray(w[2]) > 0.999)
    w1, _ = vx.inverse_variance_weights(cand, jnp.int32(1))            # horizons beyond h get no weight
    assert np.all(np.asarray(w1[2:]) == 0) and np.allclose(np.asarray(w1.sum(0)), 1.0)


def test_steve_target_runs_with_learned_ensemble():
    cfg, hp, env, nets, agent, ens, model, batch = _setup(algo="steve", value_horizon=2, horizon=2)
    t = jax.jit(lambda: vx.make_steve_target(cfg, ens, model, env)(nets, agent, batch, jax.random.PRNGKey(4), hp))()
    assert t.target.shape == (64,) and bool(jnp.all(jnp.isfinite(t.target)))


@pytest.mark.parametrize("algo, extra", [("mve", {"td_k": True}), ("steve", {})])
def test_learns_on_inverted_pendulum(algo, extra, tiny, random_return):
    cfg, hp = resolve({**tiny, "algo": algo, "total_steps": 2500, "warmup_steps": 500, "eval_every": 500,
                       "buffer_size": 5000, "target_entropy": -0.05, "value_horizon": 2, "horizon": 2,
                       "ensemble_size": 3, "num_elites": 2, "model_hidden": [32, 32], "model_train_freq": 250,
                       "model_max_train": 3000, "model_max_epochs": 5, "model_batch_size": 128, **extra})
    res = run_sweep(cfg, [hp], [0], batching="map")
    final = res.metrics["eval_return"][:, -1]
    print(algo, "random", random_return, "curve", res.metrics["eval_return"])
    assert np.all(final > 5 * random_return), (final, random_return)
