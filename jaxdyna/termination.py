"""Termination of imagined transitions: `make(cfg)` picks known / learned / never.

The known functions are written from each Brax env's own `step` code. Each takes the imagined next observation (batched, [..., obs_size]) and returns 1.0 where the
Brax env would set `done`. Velocities in Brax observations are clipped to +-10, so the
velocity part of Hopper's "healthy state range" (|x| < 100) is implied, not checked.
"""

from __future__ import annotations

import jax.numpy as jnp


def _inside(x, lo, hi):
    return (x > lo) & (x < hi)


def inverted_pendulum(next_obs):
    # brax/envs/inverted_pendulum.py: done = |obs[1]| > 0.2 (pole angle)
    return (jnp.abs(next_obs[..., 1]) > 0.2).astype(jnp.float32)


def hopper(next_obs):
    # brax/envs/hopper.py: z = torso height (obs[0]), angle = q[2] (obs[1]),
    # state = concat(q[2:], qd) (obs[1:]); healthy: |state| < 100, 0.7 < z, -0.2 < angle < 0.2
    z, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = jnp.all(jnp.abs(next_obs[..., 1:]) < 100.0, axis=-1) & (z > 0.7) & _inside(angle, -0.2, 0.2)
    return 1.0 - healthy.astype(jnp.float32)


def walker2d(next_obs):
    # brax/envs/walker2d.py: healthy: 0.8 < z < 2.0 and -1 < angle < 1 (z = obs[0], angle = obs[1])
    healthy = _inside(next_obs[..., 0], 0.8, 2.0) & _inside(next_obs[..., 1], -1.0, 1.0)
    return 1.0 - healthy.astype(jnp.float32)


def ant(next_obs):
    # brax/envs/ant.py: unhealthy if torso z (obs[0]) < 0.2 or > 1.0
    z = next_obs[..., 0]
    return ((z < 0.2) | (z > 1.0)).astype(jnp.float32)


def humanoid(next_obs):
    # brax/envs/humanoid.py: unhealthy if torso z (obs[0]) < 1.0 or > 2.0
    z = next_obs[..., 0]
    return ((z < 1.0) | (z > 2.0)).astype(jnp.float32)


def never(next_obs):
    # halfcheetah and reacher never terminate (only the time limit ends an episode)
    return jnp.zeros(next_obs.shape[:-1], jnp.float32)


KNOWN = {"inverted_pendulum": inverted_pendulum, "hopper": hopper, "walker2d": walker2d, "ant": ant,
         "humanoid": humanoid, "halfcheetah": never, "reacher": never}


def known_rule(env: str):
    """The env's own termination rule, or None where none is written down.

    MuJoCo Playground's DM Control tasks (`playground/<task>`) never terminate early: their
    `done` is set only when the physics returns NaN, which no model predicts, so their rule is
    `never` (only the time limit ends an episode, as in dm_control).
    """
    from jaxdyna.envs import is_playground

    if is_playground(env):
        return never
    return KNOWN.get(env)


def make(cfg):
    """`is_terminal(next_obs, learned) -> 1.0 / 0.0` for `cfg.termination`.

    known: the Brax env's own rule above; learned: the model's predicted terminal flag
    (`learned`, a regression target of 0 / 1) above 0.5; never: no imagined termination.
    """
    if cfg.termination == "learned":
        return lambda next_obs, learned: (learned > 0.5).astype(jnp.float32)
    if cfg.termination == "never":
        return lambda next_obs, learned: never(next_obs)
    known = known_rule(cfg.env)
    if known is None:
        raise ValueError(f"termination: no known termination function for {cfg.env!r}; known: {', '.join(KNOWN)}")
    return lambda next_obs, learned: known(next_obs)
