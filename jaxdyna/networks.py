"""Networks: MLP, tanh-Gaussian actor, critic ensemble (twin Q by default)."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

ACTIVATIONS: dict[str, Callable] = {"relu": nn.relu, "swish": nn.swish, "tanh": nn.tanh, "elu": nn.elu}


class MLP(nn.Module):
    hidden: Sequence[int]
    out: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h)(x))
        return nn.Dense(self.out)(x)


POLICY_STDS = ("log_std", "softplus")


class Actor(nn.Module):
    """Outputs the mean and log-std of a Gaussian that is squashed by tanh.

    `std`: how the second half of the head becomes a standard deviation.
    `log_std`: tanh-squashed into log-std [-5, 2] (CleanRL, MBPO's softlearning clips to [-20, 2]);
    about 0.22 at initialisation. `softplus`: softplus(x) + 0.001 (Brax's SAC); about 0.69.
    """
    hidden: Sequence[int]
    action_size: int
    std: str = "log_std"

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden, 2 * self.action_size)(obs)
        mean, raw = jnp.split(out, 2, axis=-1)
        if self.std == "softplus":
            return mean, jnp.log(jax.nn.softplus(raw) + 1e-3)
        return mean, LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)


class Critic(nn.Module):
    """`n` independent Q heads; returns Q-values of shape (..., n)."""
    hidden: Sequence[int]
    n: int = 2

    @nn.compact
    def __call__(self, obs, action):
        x = jnp.concatenate([obs, action], axis=-1)
        heads = nn.vmap(MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                        in_axes=None, out_axes=-1, axis_size=self.n)(self.hidden, 1)
        return heads(x)[..., 0, :]


def sample_action(actor: Actor, params, obs, key):
    """Reparameterised tanh-Gaussian sample and its log-probability."""
    mean, log_std = actor.apply(params, obs)
    std = jnp.exp(log_std)
    u = mean + std * jax.random.normal(key, mean.shape)
    logp = jnp.sum(-0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
    # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable
    logp -= jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
    return jnp.tanh(u), logp


def deterministic_action(actor: Actor, params, obs):
    mean, _ = actor.apply(params, obs)
    return jnp.tanh(mean)
