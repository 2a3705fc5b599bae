"""Environments: vectorised stepping with auto-reset that keeps the true next observation.

Two sources, one interface: Brax's envs (`hopper`, ...) and MuJoCo Playground's DeepMind Control
suite (`playground/CheetahRun`, ...; the optional `playground` extra). Both give `reset(key)` /
`step(state, action)` on a state with `obs`, `reward` and `done`; `make_env` returns either, and
everything below (and the whole training loop) uses nothing else.

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
PLAYGROUND = "playground/"          # prefix of MuJoCo Playground env names: playground/<DMC task>
PLAYGROUND_EXTRA = "pip install -e \".[playground]\""


def is_playground(name: str) -> bool:
    return name.startswith(PLAYGROUND)


def playground_tasks() -> tuple[str, ...]:
    """The DM Control suite tasks of MuJoCo Playground (ValueError naming the extra if it is missing)."""
    try:
        from mujoco_playground import dm_control_suite
    except ImportError:
        raise ValueError(f"env: MuJoCo Playground envs need the playground extra: {PLAYGROUND_EXTRA}") from None
    return tuple(sorted(dm_control_suite.ALL_ENVS))


def check_env_name(name: str) -> None:
    """ValueError naming the allowed values unless `name` is a Brax env or a Playground DMC task."""
    if is_playground(name):
        tasks = playground_tasks()
        if name[len(PLAYGROUND):] not in tasks:
            raise ValueError(f"env: unknown {name!r}; Playground tasks: {', '.join(PLAYGROUND + t for t in tasks)}")
    elif name not in ENV_NAMES:
        raise ValueError(f"env: unknown {name!r}; allowed: {', '.join(ENV_NAMES)}, or {PLAYGROUND}<DMC task> "
                         f"(e.g. {PLAYGROUND}CheetahRun)")


class PlaygroundEnv:
    """A MuJoCo Playground env seen through the Brax env interface the loop uses.

    Playground's `State` already has `obs`, `reward`, `done` (and `data`, `metrics`, `info`,
    carried through untouched); this layer fixes the physics implementation to MJX in JAX
    (Playground's default is Warp, a GPU-only path), refuses tasks whose observation is not one
    flat vector (vision), and leaves time limits to the loop (`episode_length`), as for Brax envs,
    so the true next observation is kept at the limit. DM Control tasks never terminate early:
    their `done` is set only when the physics returns NaN.
    """

    def __init__(self, task: str):
        from mujoco_playground import dm_control_suite

        self.env = dm_control_suite.load(task, config_overrides={"impl": "jax"})
        if not isinstance(self.env.observation_size, int):
            raise ValueError(f"env: {PLAYGROUND}{task} has a structured observation "
                             f"{self.env.observation_size}; only flat state observations are supported")
        self.observation_size = int(self.env.observation_size)
        self.action_size = int(self.env.action_size)

    def reset(self, key):
        return self.env.reset(key)

    def step(self, state, action):
        return self.env.step(state, action)


class BraxEnv:
    """A Brax env whose sizes come from shape inference, once: Brax's own `observation_size`
    runs a whole reset op by op on every access (6-12 s on one CPU core, paid by every program
    built). Everything else is the Brax env's (`step`, `reset`, `sys`, `dt`, `pipeline_init`)."""

    def __init__(self, env):
        self.env = env
        self.observation_size = int(jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs.shape[-1])
        self.action_size = int(env.action_size)

    def __getattr__(self, name):
        return getattr(self.env, name)


class Transition(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminal: jax.Array    # 1.0 where the episode terminated (no bootstrap); time limits are not terminal


@struct.dataclass
class EnvState:
    brax: object            # batched env state (a Brax or Playground `State`)
    steps: jax.Array        # int32 [num_envs]: steps taken in the current episode
    ep_return: jax.Array    # float32 [num_envs]: return so far in the current episode
    key: jax.Array


@functools.lru_cache(maxsize=None)
def make_env(name: str, backend: str = "generalized"):
    """The Brax env (as `BraxEnv`), or a `PlaygroundEnv` for `playground/<task>` (which always runs
    MJX: `backend` is Brax's choice of physics). Cached: building the system is slow."""
    check_env_name(name)
    if is_playground(name):
        return PlaygroundEnv(name[len(PLAYGROUND):])
    from brax import envs as brax_envs

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    return BraxEnv(brax_envs.get_environment(name, backend=backend))


def keep_mjx_on_local_devices() -> None:
    """In a multi-process run, make MJX place what it builds on this process's own device.

    Brax builds its system with `mujoco.mjx.put_model` and its contacts with `mjx.make_data`,
    which put their arrays on `jax.devices()[0]`: under `jax.distributed` that is process 0's
    device, which the other processes cannot address (building any env there fails). Passing
    the local device fixes it.
    """
    from mujoco import mjx

    for name in ("put_model", "make_data"):
        original = getattr(mjx, name)
        if getattr(original, "_jaxdyna_local", False):
            continue

        def local(m, *args, _original=original, **kwargs):
            if "device" not in kwargs and not args:
                kwargs["device"] = jax.local_devices()[0]
            return _original(m, *args, **kwargs)

        local._jaxdyna_local = True
        setattr(mjx, name, local)


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


# Envs whose observation determines the Brax (generalized backend) simulator state, so that
# `oracle_step` is the env's own step. Not here:
# * walker2d, halfcheetah: the generalized pipeline state also carries the inverse mass matrix,
#   refined each physics substep by a few Newton-Schulz iterations warm-started from the previous
#   one (brax/generalized/mass.py `matrix_inv`, sys.matrix_inv_iterations = 20 / 10). On these
#   two models it is often stale (||M M_inv - I|| ~ 1 on about half the walker2d and 3% of the
#   halfcheetah states of random-action rollouts), and the env step from such a state differs from
#   the step from the same (q, qd) by O(1)-O(10) in the next observation: the observation does not
#   determine the step. walker2d also clips its observed joint velocities at +-10 on most states.
#   (hopper carries the same approximate inverse, matrix_inv_iterations = 10, but it stayed
#   converged, ||M M_inv - I|| < 1e-5, on every state of uniform and bang-bang random-action
#   rollouts; the oracle assumes it is, as it cannot see it.)
# * inverted_double_pendulum (sin/cos of the angles, clipped qd), reacher (tip velocity instead of
#   qd): the observation does not hold (q, qd). ant, humanoid: not verified.
ORACLE_ENVS = ("inverted_pendulum", "hopper")
_QD_CLIP = 10.0     # hopper `_get_obs`: `jp.clip(pipeline_state.qd, -10, 10)`


def _check_oracle_env(name: str) -> None:
    if name not in ORACLE_ENVS:
        raise ValueError(f"model: oracle is available for {', '.join(ORACLE_ENVS)}, not {name!r}")


def oracle_obs_clipped(name: str, obs: jax.Array) -> jax.Array:
    """True for each observation (rows of `obs`) whose joint velocities the env clipped.

    There the observation does not determine the simulator state and `oracle_step` is not the
    env's step (see `state_from_obs`). Always False for inverted_pendulum, which does not clip.
    """
    _check_oracle_env(name)
    if name == "hopper":
        return jnp.any(jnp.abs(obs[..., 5:]) >= _QD_CLIP, axis=-1)
    return jnp.zeros(obs.shape[:-1], bool)


def state_from_obs(env, name: str, obs: jax.Array):
    """(q, qd) of the Brax system from one observation, for the envs in ORACLE_ENVS.

    * inverted_pendulum observes `concat([q, qd])` (brax/envs/inverted_pendulum.py `_get_obs`):
      exact.
    * hopper observes `q.at[1].set(x.pos[0, 2])[1:]` and `clip(qd, -10, 10)` (brax/envs/hopper.py
      `_get_obs`). obs[0] is the torso's world height, not the root z slide joint q[1] (the torso
      body sits at z = 1.25 in hopper.xml, so q[1] = height - 1.25). q[1] is recovered as obs[0]
      minus the torso height that forward kinematics give with q[1] = 0; the root x position,
      not observed, is set to 0. The dynamics (a flat floor), the forward reward (an x
      difference) and the termination test do not depend on it. Velocities are taken as
      observed: where any |qd| reached 10 the observation holds the clipped value, the state is
      not the true one and neither is the step (`oracle_obs_clipped` flags these rows; under 0.5%
      of the states of random-action rollouts). Everywhere else the reconstruction is exact.
    """
    _check_oracle_env(name)
    if name == "inverted_pendulum":
        return obs[:2], obs[2:4]
    from brax import kinematics

    q, qd = jnp.concatenate([jnp.zeros(1, obs.dtype), obs[:5]]), obs[5:]
    x, _ = kinematics.forward(env.sys, q.at[1].set(0.0), jnp.zeros_like(qd))
    return q.at[1].set(obs[0] - x.pos[0, 2]), qd


def oracle_step(env, name: str, obs: jax.Array, action: jax.Array):
    """The true Brax step from observations: (next_obs, reward, terminal), batched over rows.

    For the envs in ORACLE_ENVS (generalized backend) this is the env's own `env.step` from the
    true simulator state with the same action: same next observation, reward and done flag (up to
    float32 rounding, which contacts can amplify to ~1e-4 in hopper's joint velocities), except on
    hopper rows whose observed joint velocities are clipped (`oracle_obs_clipped`), where the step
    is taken from the clipped velocities. The simulator state is rebuilt with `pipeline_init`;
    the envs' `step` uses nothing else of the state (inverted_pendulum copies `info` through,
    hopper writes `metrics`). Other backends keep further state and are not covered.
    """
    from brax.envs.base import State

    _check_oracle_env(name)

    def one(o, a):
        q, qd = state_from_obs(env, name, o)
        zero = jnp.zeros((), jnp.float32)
        nxt = env.step(State(pipeline_state=env.pipeline_init(q, qd), obs=o, reward=zero, done=zero,
                             metrics={}, info={}), a)
        return nxt.obs, jnp.asarray(nxt.reward, jnp.float32), jnp.asarray(nxt.done, jnp.float32)

    return jax.vmap(one)(obs, action)
