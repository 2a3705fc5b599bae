"""Tabular Dyna-Q and Dyna-Q+ (Sutton & Barto 2nd ed., section 8.2-8.3) in pure JAX.

One real step of the agent (the book's boxed algorithm):
  (b) A <- epsilon-greedy(Q, S), ties broken at random
  (c) take A, observe R, S'
  (d) Q(S,A) <- Q(S,A) + alpha [R + gamma max_a Q(S',a) - Q(S,A)]
  (e) Model(S,A) <- (S', R)
  (f) n times: S <- random previously observed state, A <- random action previously taken in S,
      (S', R) <- Model(S,A), then the update of (d).
Dyna-Q+ is the same algorithm with hyperparameters kappa > 0 and plan_untried = True: planning
rewards get the bonus kappa * sqrt(tau), tau = real steps since (S,A) was last tried, and the
planning may pick actions never tried in an observed state, which the model takes to lead back
to the same state with reward 0 (the book's footnote). Dyna-Q is kappa = 0, plan_untried = False.

Hyperparameters are traced, so one compiled program runs any batch of them:
`make_batched_rollout(maze, n_steps, max_planning)` is jit(vmap over configs of vmap over runs).
Planning runs to the static `max_planning` and masks updates past each config's n_planning.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyna.tabular.maze import N_ACTIONS, Maze, MazeEnv, env_step, make_env


class Hparams(NamedTuple):
    """Agent hyperparameters; every field may be a traced scalar (or batched under vmap)."""

    alpha: float = 0.1
    epsilon: float = 0.1
    gamma: float = 0.95
    n_planning: int = 0
    kappa: float = 0.0
    plan_untried: bool = False


def dyna_q(n_planning: int = 0, alpha: float = 0.1, epsilon: float = 0.1, gamma: float = 0.95) -> Hparams:
    """Dyna-Q with the book's defaults (n_planning = 0 is one-step tabular Q-learning)."""
    return Hparams(alpha, epsilon, gamma, n_planning, 0.0, False)


def dyna_q_plus(n_planning: int = 0, kappa: float = 1e-3, alpha: float = 0.1, epsilon: float = 0.1,
                gamma: float = 0.95) -> Hparams:
    """Dyna-Q+: Dyna-Q plus the planning bonus kappa * sqrt(tau) and planning of untried actions."""
    return Hparams(alpha, epsilon, gamma, n_planning, kappa, True)


def stack_hparams(configs: Sequence[Hparams]) -> Hparams:
    """Stack configs into one Hparams of arrays with a leading config axis (for vmap)."""
    dtypes = Hparams(jnp.float32, jnp.float32, jnp.float32, jnp.int32, jnp.float32, jnp.bool_)
    return Hparams(*(jnp.asarray([getattr(c, f) for c in configs], dtype=d)
                     for f, d in zip(Hparams._fields, dtypes)))


class AgentState(NamedTuple):
    """Everything that changes over a run: value table, model, clocks, position, rng."""

    q: jax.Array  # (S, A) action values
    model_next: jax.Array  # (S, A) int32 modelled next cell (initially the cell itself)
    model_reward: jax.Array  # (S, A) modelled reward (initially 0)
    tried: jax.Array  # (S, A) bool: action taken in that state in a real step
    last_tried: jax.Array  # (S, A) int32 real step count when last tried (0 if never)
    cell: jax.Array  # () int32 current cell
    t: jax.Array  # () int32 real steps taken so far
    rng: jax.Array


class StepRecord(NamedTuple):
    """What a real step leaves behind, stacked over steps by the scan."""

    reward: jax.Array  # () float32
    done: jax.Array  # () bool: the step reached a goal (episode ended)
    cell: jax.Array  # () int32 cell reached (the goal on the last step of an episode)


def init_state(env: MazeEnv, key: jax.Array) -> AgentState:
    """Q0 = 0, an empty model whose untried entries map (s, a) -> (s, 0), agent on the start."""
    n_states = env.goal.shape[0]
    shape = (n_states, N_ACTIONS)
    return AgentState(
        q=jnp.zeros(shape, jnp.float32),
        model_next=jnp.broadcast_to(jnp.arange(n_states, dtype=jnp.int32)[:, None], shape),
        model_reward=jnp.zeros(shape, jnp.float32),
        tried=jnp.zeros(shape, bool),
        last_tried=jnp.zeros(shape, jnp.int32),
        cell=env.start,
        t=jnp.zeros((), jnp.int32),
        rng=key,
    )


def uniform_among(u: jax.Array, allowed: jax.Array) -> jax.Array:
    """Index drawn uniformly among the True entries of the last axis of `allowed`.

    `u` holds uniform [0, 1) numbers, one per draw, of shape `allowed.shape[:-1]` or
    broadcastable against it; every row of `allowed` must have a True entry.
    """
    counts = allowed.sum(axis=-1)
    k = jnp.minimum(jnp.floor(u * counts).astype(jnp.int32), counts - 1)
    return jnp.sum(jnp.cumsum(allowed, axis=-1) <= k[..., None], axis=-1)


def epsilon_greedy(u: jax.Array, q_row: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Random action with probability epsilon, else a greedy one with ties broken at random.

    `u` holds three uniform numbers: explore?, which random action, which greedy tie.
    """
    greedy = uniform_among(u[2], q_row == q_row.max())
    random = uniform_among(u[1], jnp.ones_like(q_row, dtype=bool))
    return jnp.where(u[0] < epsilon, random, greedy)


def q_learning_update(q: jax.Array, s, a, r, s_next, terminal, alpha, gamma) -> jax.Array:
    """One-step Q-learning update of q[s, a]; no bootstrap from a terminal s_next."""
    target = r + gamma * jnp.where(terminal, 0.0, q[s_next].max())
    return q.at[s, a].add(alpha * (target - q[s, a]))


def plan(state: AgentState, env: MazeEnv, hp: Hparams, u: jax.Array) -> jax.Array:
    """The n planning updates of one real step; returns the new value table.

    `u` is (2, max_planning) uniform numbers: all (state, action) draws are made up front
    (the model does not change during planning) and updates past hp.n_planning are masked out.
    """
    max_planning = u.shape[1]
    visited = state.tried.any(axis=1)
    states = uniform_among(u[0][:, None], visited)[:, 0]
    allowed = state.tried | (hp.plan_untried & visited[:, None])
    actions = uniform_among(u[1], allowed[states])
    tau = (state.t - state.last_tried).astype(jnp.float32)
    bonus_reward = state.model_reward + hp.kappa * jnp.sqrt(tau)

    def update(i, q):
        s, a = states[i], actions[i]
        s_next = state.model_next[s, a]
        alpha = jnp.where(i < hp.n_planning, hp.alpha, 0.0)
        return q_learning_update(q, s, a, bonus_reward[s, a], s_next, env.goal[s_next], alpha, hp.gamma)

    return jax.lax.fori_loop(0, max_planning, update, state.q)


def agent_step(env: MazeEnv, max_planning: int, state: AgentState, hp: Hparams
               ) -> tuple[AgentState, StepRecord]:
    """One real step: act, learn directly, update the model, plan; reset to start on a goal."""
    rng, key = jax.random.split(state.rng)
    u = jax.random.uniform(key, (3 + 2 * max_planning,))  # all of this step's randomness
    s = state.cell
    a = epsilon_greedy(u[:3], state.q[s], hp.epsilon)
    s_next, r, done = env_step(env, s, a, state.t)
    t = state.t + 1
    state = state._replace(
        q=q_learning_update(state.q, s, a, r, s_next, done, hp.alpha, hp.gamma),
        model_next=state.model_next.at[s, a].set(s_next),
        model_reward=state.model_reward.at[s, a].set(r),
        tried=state.tried.at[s, a].set(True),
        last_tried=state.last_tried.at[s, a].set(t),
        t=t,
        rng=rng,
    )
    if max_planning > 0:
        state = state._replace(q=plan(state, env, hp, u[3:].reshape(2, max_planning)))
    state = state._replace(cell=jnp.where(done, env.start, s_next))
    return state, StepRecord(r, done, s_next)


def make_rollout(maze: Maze, n_steps: int, max_planning: int):
    """A pure `rollout(state, hp) -> (state after n_steps real steps, StepRecord stacked over steps)`.

    `maze`, `n_steps` and `max_planning` (the largest n_planning it supports) are static.
    Rollouts chain: two rollouts of T steps give exactly one of 2T steps.
    """
    step = functools.partial(agent_step, make_env(maze), max_planning)

    def rollout(state: AgentState, hp: Hparams) -> tuple[AgentState, StepRecord]:
        return jax.lax.scan(lambda st, _: step(st, hp), state, None, length=n_steps)

    return rollout


def make_train(maze: Maze, n_steps: int, max_planning: int):
    """A pure `train(key, hp) -> (final AgentState, StepRecord stacked over n_steps)` from scratch.

    `vmap(vmap(train, (0, None)), (None, 0))` runs seeds x configs in one compiled program.
    """
    env = make_env(maze)
    rollout = make_rollout(maze, n_steps, max_planning)
    return lambda key, hp: rollout(init_state(env, key), hp)


@functools.lru_cache(maxsize=16)
def make_batched_rollout(maze: Maze, n_steps: int, max_planning: int):
    """jit of the rollout vmapped over configs and runs: state (C, R, ...), hp (C,) -> (C, R, ...)."""
    rollout = make_rollout(maze, n_steps, max_planning)
    return jax.jit(jax.vmap(jax.vmap(rollout, in_axes=(0, None)), in_axes=(0, 0)))


def init_states(maze: Maze, n_configs: int, runs: int, seed: int = 0) -> AgentState:
    """Initial states (config, run, ...); every config sees the same run keys (common random numbers)."""
    keys = jax.random.split(jax.random.key(seed), runs)
    states = jax.vmap(functools.partial(init_state, make_env(maze)))(keys)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (n_configs,) + x.shape), states)


def to_numpy(tree):
    """Device arrays (and key arrays, as raw key data) to numpy."""
    def convert(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)
    return jax.tree.map(convert, tree)


def run(maze: Maze, configs: Sequence[Hparams], runs: int, n_steps: int, seed: int = 0
        ) -> tuple[AgentState, StepRecord]:
    """Run every config for `runs` seeds and `n_steps` real steps in one compiled program.

    Returns the final states and step records as numpy arrays with leading axes (config, run).
    """
    max_planning = max(int(c.n_planning) for c in configs)
    rollout = make_batched_rollout(maze, int(n_steps), max_planning)
    final, records = rollout(init_states(maze, len(configs), runs, seed), stack_hparams(configs))
    return to_numpy(final), to_numpy(records)


def episode_lengths(done: np.ndarray, n_episodes: int) -> np.ndarray:
    """Steps taken by each of the first n_episodes episodes, from done flags over the last axis.

    Episodes not completed within the record are -1.
    """
    done = np.asarray(done, dtype=bool)
    lead = done.shape[:-1]
    flat = done.reshape(-1, done.shape[-1])
    out = np.full((flat.shape[0], n_episodes), -1, dtype=np.int64)
    for i, row in enumerate(flat):
        ends = np.flatnonzero(row)[:n_episodes] + 1
        out[i, :len(ends)] = np.diff(ends, prepend=0)
    return out.reshape(*lead, n_episodes)


def run_episodes(maze: Maze, configs: Sequence[Hparams], runs: int, n_episodes: int, seed: int = 0,
                 chunk_steps: int | None = None, max_steps: int = 1_000_000) -> tuple[np.ndarray, int]:
    """Steps per episode (config, run, episode) for the first n_episodes of every run.

    The budget is episodes but a compiled program scans a static number of real steps, so
    the runs advance in chunks of `chunk_steps` (one compiled program, reused) until every run
    has finished n_episodes. Chunking does not change results: rollouts chain exactly.
    Returns (lengths, steps simulated per run); raises RuntimeError past max_steps.
    """
    chunk = int(chunk_steps or 4 * maze.n_states * n_episodes)
    max_planning = max(int(c.n_planning) for c in configs)
    rollout = make_batched_rollout(maze, chunk, max_planning)
    state, hp = init_states(maze, len(configs), runs, seed), stack_hparams(configs)
    done_chunks = []
    while True:
        state, records = rollout(state, hp)
        done_chunks.append(np.asarray(records.done))
        n_steps = chunk * len(done_chunks)
        lengths = episode_lengths(np.concatenate(done_chunks, axis=-1), n_episodes)
        if (lengths >= 0).all():
            return lengths, n_steps
        if n_steps >= max_steps:
            raise RuntimeError(f"some runs did not finish {n_episodes} episodes in {n_steps} steps")
