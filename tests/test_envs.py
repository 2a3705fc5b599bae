import jax
import jax.numpy as jnp
import numpy as np

from conftest import reset_envs
from jaxdyna.envs import env_step, evaluate, make_env


def test_true_next_obs_kept_and_truncation_is_not_terminal():
    env = make_env("inverted_pendulum", "spring")
    es = reset_envs(env, jax.random.PRNGKey(0), 2)
    step = jax.jit(lambda es, a: env_step(env, es, a, episode_length=3))
    zero = jnp.zeros((2, 1))
    seen = []
    for _ in range(4):
        prev_steps = np.asarray(es.steps)
        es, tr, ended = step(es, zero)
        seen.append((prev_steps, tr, np.asarray(ended), es))
    # step 3 hits the time limit: the episode ends, the env resets, but the transition is not terminal
    prev, tr, ended, es3 = seen[2]
    assert np.all(prev == 2) and np.all(~np.isnan(ended)) and np.all(np.asarray(tr.terminal) == 0)
    # the stored next_obs is the true successor, not the reset observation
    assert not np.allclose(np.asarray(tr.next_obs), np.asarray(es3.brax.obs))
    assert np.all(np.asarray(es3.steps) == 0)
    np.testing.assert_array_equal(ended, [3.0, 3.0])   # return of the ended episode (reward 1 per step)
    # the next transition starts from the reset observation
    np.testing.assert_array_equal(np.asarray(seen[3][1].obs), np.asarray(es3.brax.obs))


def test_termination_sets_terminal_and_resets():
    env = make_env("inverted_pendulum", "spring")
    es = reset_envs(env, jax.random.PRNGKey(1), 1)
    step = jax.jit(lambda es, a: env_step(env, es, a, episode_length=1000))
    for t in range(200):                    # full push one way: the pole falls
        es, tr, ended = step(es, jnp.ones((1, 1)))
        if float(tr.terminal[0]) == 1.0:
            break
    assert float(tr.terminal[0]) == 1.0 and abs(float(tr.next_obs[0, 1])) > 0.2
    assert int(es.steps[0]) == 0 and float(ended[0]) == t + 1


def test_evaluate_matches_stepping_each_episode_to_its_end():
    """Returns and lengths equal a plain Python loop per episode, including episodes that end early
    (a constant push topples the pendulum) and ones capped by the time limit."""
    env = make_env("inverted_pendulum", "spring")
    step, reset = jax.jit(env.step), jax.jit(env.reset)
    cap = 60
    run = jax.jit(lambda k, push: evaluate(env, lambda obs, _k: jnp.full((obs.shape[0], 1), push), k, 3, cap))
    for push in (1.0, 0.0):
        ret, length = run(jax.random.PRNGKey(4), push)
        # the same reset keys as evaluate, then each episode stepped alone
        k_reset, _ = jax.random.split(jax.random.PRNGKey(4))
        rets, lens = [], []
        for k in jax.random.split(k_reset, 3):
            s, r, n = reset(k), 0.0, 0
            while n < cap:
                s = step(s, jnp.full((1,), push))
                r, n = r + float(s.reward), n + 1
                if float(s.done):
                    break
            rets.append(r)
            lens.append(n)
        np.testing.assert_allclose(float(ret), np.mean(rets), rtol=1e-6)
        np.testing.assert_allclose(float(length), np.mean(lens), rtol=1e-6)
        if push:
            assert max(lens) < cap        # every episode terminated early
        else:
            assert lens == [cap] * 3      # balanced until the time limit


def test_brax_env_sizes_by_shape_match_brax():
    """`BraxEnv` infers the sizes by shape; Brax's own properties run a reset to find them."""
    env = make_env("inverted_pendulum", "spring")
    assert (env.observation_size, env.action_size) == (env.env.observation_size, env.env.action_size) == (4, 1)
    assert env.sys is env.env.sys                       # the rest is the Brax env's own
