"""Actor heads: both std parameterisations give a valid tanh-Gaussian with the right log-density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdyna.networks import POLICY_STDS, Actor, deterministic_action, sample_action


@pytest.mark.parametrize("std", POLICY_STDS)
def test_tanh_gaussian_log_prob_matches_change_of_variables(std):
    actor = Actor((32, 32), 2, std)
    obs = jax.random.normal(jax.random.PRNGKey(0), (64, 3))
    params = actor.init(jax.random.PRNGKey(1), obs)
    act, logp = sample_action(actor, params, obs, jax.random.PRNGKey(2))
    mean, log_std = actor.apply(params, obs)
    # recompute log pi(a) = log N(atanh a; mean, std) - log(1 - a^2), summed over action dims
    u = jnp.arctanh(jnp.clip(act, -1 + 1e-6, 1 - 1e-6))
    std_ = jnp.exp(log_std)
    ref = jnp.sum(-0.5 * ((u - mean) / std_) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
                  - jnp.log(1 - act ** 2), axis=-1)
    assert act.shape == (64, 2) and logp.shape == (64,)
    assert np.all(np.abs(np.asarray(act)) <= 1)
    # where tanh is not saturated in float32, the recomputed density must agree
    ok = np.all(np.abs(np.asarray(act)) < 0.999, axis=-1)
    assert ok.sum() > 32
    np.testing.assert_allclose(np.asarray(logp)[ok], np.asarray(ref)[ok], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(np.asarray(deterministic_action(actor, params, obs)), np.tanh(np.asarray(mean)), rtol=1e-5)


def test_initial_std_of_each_parameterisation():
    """At initialisation (head output near 0): log_std head ~ exp(-1.5) = 0.22, softplus ~ log 2 = 0.69."""
    obs = 0.01 * jax.random.normal(jax.random.PRNGKey(0), (128, 3))
    stds = {}
    for std in POLICY_STDS:
        actor = Actor((32, 32), 1, std)
        params = actor.init(jax.random.PRNGKey(1), obs)
        stds[std] = float(jnp.median(jnp.exp(actor.apply(params, obs)[1])))
    assert stds["log_std"] == pytest.approx(np.exp(-1.5), rel=0.1)
    assert stds["softplus"] == pytest.approx(np.log(2.0) + 1e-3, rel=0.1)


def test_softplus_std_stays_positive_for_very_negative_outputs():
    actor = Actor((4,), 1, "softplus")
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["params"]["MLP_0"]["Dense_1"]["bias"] = jnp.array([0.0, -1e4])
    _, log_std = actor.apply(params, jnp.zeros((1, 2)))
    assert np.isfinite(float(log_std[0, 0])) and float(jnp.exp(log_std[0, 0])) == pytest.approx(1e-3, rel=1e-3)
