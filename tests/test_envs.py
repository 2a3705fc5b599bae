import jax
import jax.numpy as jnp
import numpy as np

from jaxdyna.envs import env_reset, env_step, make_env


def test_true_next_obs_kept_and_truncation_is_not_terminal():
    env = make_env("inverted_pendulum", "spring")
    es = env_reset(env, jax.random.PRNGKey(0), 2)
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
    es = env_reset(env, jax.random.PRNGKey(1), 1)
    step = jax.jit(lambda es, a: env_step(env, es, a, episode_length=1000))
    for t in range(200):                    # full push one way: the pole falls
        es, tr, ended = step(es, jnp.ones((1, 1)))
        if float(tr.terminal[0]) == 1.0:
            break
    assert float(tr.terminal[0]) == 1.0 and abs(float(tr.next_obs[0, 1])) > 0.2
    assert int(es.steps[0]) == 0 and float(ended[0]) == t + 1
