"""Brax environments: vectorised stepping with auto-reset that keeps the true next observation.

Brax's own `AutoResetWrapper` overwrites `obs` with the reset observation on the step an episode
ends, losing the real next state that the replay buffer and the model need. `env_step` here
returns a `Transition` with the true `next_obs`, and separately reports termination (the MDP
ended: no bootstrap) and truncation (the time limit hit: bootstrap through it).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

ENV_NAMES = ("inverted_pendulum", "inverted_double_pendulum", "reacher", "hopper", "walker2d",
             "halfcheetah", "ant", "humanoid")
BACKENDS = ("generalized", "positional", "spring", "mjx")


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminal: jax.Array    # 1.0 where the episode terminated (no bootstrap); time limits are not terminal


@struct.dataclass
class EnvState:
    brax: object            # batched brax.envs.State
    steps: jax.Array        # int32 [num_envs]: steps taken in the current episode
    ep_return: jax.Array    # float32 [num_envs]: return so far in the current episode
    key: jax.Array


@functools.lru_cache(maxsize=None)
def make_env(name: str, backend: str = "generalized"):
    """The unwrapped Brax env (cached: building the system is slow)."""
    from brax import envs as brax_envs

    if name not in ENV_NAMES:
        raise ValueError(f"unknown env {name!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    return brax_envs.get_environment(name, backend=backend)


def _reset_batch(env, key: jax.Array, num_envs: int):
    state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return state.replace(reward=state.reward.astype(jnp.float32), done=state.done.astype(jnp.float32))


def env_reset(env, key: jax.Array, num_envs: int) -> EnvState:
    key, sub = jax.random.split(key)
    return EnvState(brax=_reset_batch(env, sub, num_envs), steps=jnp.zeros(num_envs, jnp.int32),
                    ep_return=jnp.zeros(num_envs, jnp.float32), key=key)


def env_step(env, es: EnvState, action: jax.Array, episode_length: int):
    """Step every env once; reset those whose episode ended (terminated or truncated).

    Returns the new state, the transition (with the true next observation), and for each env
    the return of the episode that just ended (NaN where no episode ended).
    """
    nxt = jax.vmap(env.step)(es.brax, action)
    reward = jnp.asarray(nxt.reward, jnp.float32) * jnp.ones_like(es.ep_return)
    terminal = jnp.asarray(nxt.done, jnp.float32) * jnp.ones_like(es.ep_return)
    steps = es.steps + 1
    ended = (terminal > 0) | (steps >= episode_length)
    ep_return = es.ep_return + reward
    trans = Transition(obs=es.brax.obs, action=action, reward=reward, next_obs=nxt.obs, terminal=terminal)

    key, sub = jax.random.split(es.key)
    fresh = _reset_batch(env, sub, action.shape[0])
    nxt = nxt.replace(reward=reward, done=terminal)

    def pick(a, b):
        m = ended.reshape(ended.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)

    brax_state = jax.tree_util.tree_map(pick, fresh, nxt)
    new = EnvState(brax=brax_state, steps=jnp.where(ended, 0, steps),
                   ep_return=jnp.where(ended, 0.0, ep_return), key=key)
    return new, trans, jnp.where(ended, ep_return, jnp.nan)


def evaluate(env, policy, key: jax.Array, num_episodes: int, episode_length: int):
    """Run `num_episodes` deterministic episodes in parallel; returns (mean return, mean length).

    `policy(obs, key) -> action` (the agent's is deterministic and ignores the key). Each env
    stops accumulating at its first termination; episodes are capped at `episode_length` steps.
    The loop ends as soon as every episode has ended (a `while_loop`), so early evaluations of
    envs that terminate quickly cost a fraction of `episode_length` steps.
    """
    k_reset, k_act = jax.random.split(key)
    state = _reset_batch(env, k_reset, num_episodes)

    def running(carry):
        t, _, _, _, alive = carry
        return (t < episode_length) & jnp.any(alive > 0)

    def body(carry):
        t, state, ret, length, alive = carry
        state = jax.vmap(env.step)(state, policy(state.obs, jax.random.fold_in(k_act, t)))
        ret = ret + alive * jnp.asarray(state.reward, jnp.float32)
        length = length + alive
        alive = alive * (1.0 - jnp.asarray(state.done, jnp.float32))
        return t + 1, state, ret, length, alive

    zeros = jnp.zeros(num_episodes, jnp.float32)
    _, _, ret, length, _ = jax.lax.while_loop(running, body, (jnp.int32(0), state, zeros, zeros, zeros + 1.0))
    return ret.mean(), length.mean()


ORACLE_ENVS = ("inverted_pendulum", "hopper", "walker2d", "halfcheetah")


def state_from_obs(env, name: str, obs: jax.Array):
    """(q, qd) of the Brax system from one observation, for envs whose observation holds them.

    inverted_pendulum observes (q, qd) exactly. hopper, walker2d and halfcheetah drop the root
    x position (the dynamics do not depend on it; we put 0) and clip velocities to +-10.
    """
    if name == "inverted_pendulum":
        return obs[:2], obs[2:4]
    if name in ("hopper", "walker2d", "halfcheetah"):
        nq = env.sys.q_size()
        return jnp.concatenate([jnp.zeros(1), obs[: nq - 1]]), obs[nq - 1:]
    raise ValueError(f"model: oracle is available for {', '.join(ORACLE_ENVS)}, not {name!r}")


def oracle_step(env, name: str, obs: jax.Array, action: jax.Array):
    """The true Brax step from observations: (next_obs, reward, terminal), batched over rows."""
    from brax.envs.base import State

    def one(o, a):
        q, qd = state_from_obs(env, name, o)
        ps = env.pipeline_init(q, qd)
        zero = jnp.zeros((), jnp.float32)
        nxt = env.step(State(pipeline_state=ps, obs=o, reward=zero, done=zero, metrics={}, info={}), a)
        return nxt.obs, jnp.asarray(nxt.reward, jnp.float32), jnp.asarray(nxt.done, jnp.float32)

    return jax.vmap(one)(obs, action)
