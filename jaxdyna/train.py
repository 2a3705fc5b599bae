"""The one training loop. Every algorithm is this loop, configured.

    train = init (warm-up collection) + advance (all evaluation periods)
    evaluation period = chunks_per_eval x chunk, then end_period (evaluate)
    chunk             = fit_model, imagine (model-based only), then chunk_steps x (collect, learn)

Everything below `make_train` runs inside one jitted `lax.scan`; `Config` is static, `HParams`
traced, so `jax.vmap(train)(keys, hparams)` runs many seeds and settings as one program. The sweep
runner compiles `chunk` and `end_period` on their own and calls them in turn (the same numbers),
so that no call outlives a model refit interval.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from jaxdyna import buffer as rb
from jaxdyna import model as mdl
from jaxdyna.config import Config, HParams
from jaxdyna.envs import EnvState, Transition, env_reset, env_step, evaluate, make_env
from jaxdyna.networks import deterministic_action, sample_action
from jaxdyna import value_expansion as vx
from jaxdyna.sac import AgentState, agent_init, learn, make_nets, sac_target


@struct.dataclass
class TrainState:
    agent: AgentState
    env: EnvState
    real: rb.Buffer                 # real transitions only (the model is fit on these)
    model: Any                      # ensemble params, optimiser state, normaliser, elites (None: SAC)
    model_buf: Any                  # imagined transitions (None unless Dyna / MBPO)
    refit_sizes: Any                # rows added by each of the last `model_retain` imagination rounds
    key: jax.Array
    env_steps: jax.Array            # real env steps so far (warm-up included)


class Parts(NamedTuple):
    """The loop's own pieces, each a pure function of the state (the benchmarks time these)."""
    collect: Callable[[TrainState, jax.Array, bool], tuple[TrainState, jax.Array]]   # one real step
    learn: Callable[[TrainState, jax.Array, HParams], tuple[TrainState, dict]]       # updates_per_step updates
    fit_model: Callable[[TrainState, jax.Array, HParams], tuple[TrainState, dict]]   # one refit
    imagine: Callable[[TrainState, jax.Array, jax.Array, HParams], tuple[TrainState, dict]]  # one round
    evaluate: Callable[[TrainState, jax.Array], tuple[jax.Array, jax.Array]]        # (return, length)


class Program(NamedTuple):
    init: Callable[[jax.Array, HParams], TrainState]
    advance: Callable[[TrainState, HParams], tuple[TrainState, dict]]   # `num_evals` periods
    train: Callable[[jax.Array, HParams], tuple[TrainState, dict]]
    num_evals: int
    parts: Parts
    # one evaluation period in `chunks_per_eval + 1` calls (the sweep runner's host loop): `chunk`
    # (refit, imagine, `chunk_steps` env steps) returns its metrics and each step's ended-episode
    # returns; after the period's last chunk, `end_period(state, those returns (a tuple, one per
    # chunk), the last chunk's metrics)` evaluates and gives the period's metrics: the same numbers
    # as one period of `advance`
    chunk: Callable[[TrainState, HParams], tuple[TrainState, tuple[dict, jax.Array]]]
    end_period: Callable[[TrainState, tuple, dict], tuple[TrainState, dict]]


def _example_transition(obs_size: int, act_size: int) -> Transition:
    z = jnp.zeros((), jnp.float32)
    return Transition(obs=jnp.zeros(obs_size), action=jnp.zeros(act_size), reward=z,
                      next_obs=jnp.zeros(obs_size), terminal=z)


def mix_batches(real: Transition, imagined: Transition, n_real: jax.Array) -> Transition:
    """Rows [0, n_real) from the real batch, the rest from the imagined one (same fixed shape)."""
    take_real = jnp.arange(real.reward.shape[0]) < n_real

    def pick(r, m):
        return jnp.where(take_real.reshape(take_real.shape + (1,) * (r.ndim - 1)), r, m)

    return jax.tree_util.tree_map(pick, real, imagined)


def real_capacity(cfg) -> int:
    """Rows of the real replay buffer: `buffer_size`, but never more than the run's `total_steps`.

    A ring buffer at least as large as everything a run will ever collect never evicts, so the
    cap changes no result (sampling depends only on the live rows) and keeps the state, its
    checkpoints and the model's training window (`fit_model`) as small as the run needs.
    """
    return max(1, min(cfg.buffer_size, cfg.total_steps))


def n_real_rows(real_ratio, batch_size: int, model_buffer_size) -> jax.Array:
    """Rows of an agent batch drawn from real data: int(real_ratio * batch) as in MBPO
    (`env_batch_size = int(batch_size * real_ratio)`), all of them while the model buffer is empty."""
    n_real = jnp.floor(real_ratio * batch_size + 1e-4)     # + 1e-4: 0.3 * 10 is 3, not 2.9999
    return jnp.where(model_buffer_size > 0, n_real, batch_size).astype(jnp.int32)


def make_train(cfg: Config, progress_fn: Callable[[dict], None] | None = None,
               num_evals: int | None = None) -> Program:
    """Build the program for `cfg`. `advance` runs `num_evals` evaluation periods (default: all)."""
    env = make_env(cfg.env, cfg.backend)
    obs_size, act_size = env.observation_size, env.action_size
    nets = make_nets(cfg, act_size)
    ens = mdl.make_ensemble(cfg, obs_size, act_size) if cfg.model == "learned" else None
    dynamics = mdl.make_dynamics(cfg, ens, env) if cfg.model_based else None    # the one model step
    dyna_style = cfg.algo in ("dyna", "mbpo")          # imagined data goes into a model buffer
    value_expansion = cfg.algo in ("mve", "steve")     # imagined rollouts only shape the TD target
    periods = cfg.num_evals if num_evals is None else num_evals

    def run_eval(state: TrainState, key: jax.Array):
        """`eval_episodes` episodes of the deterministic policy: (mean return, mean length)."""
        policy = lambda obs, _key: deterministic_action(nets.actor, state.agent.actor, obs)
        return evaluate(env, policy, key, cfg.eval_episodes, cfg.episode_length)

    # --- collect -------------------------------------------------------------------------
    def collect(state: TrainState, key: jax.Array, random_actions: bool):
        """Step the real envs once with the exploration policy; push to the real buffer."""
        obs = state.env.brax.obs
        if random_actions:
            action = jax.random.uniform(key, (cfg.num_envs, act_size), minval=-1.0, maxval=1.0)
        else:
            action, _ = sample_action(nets.actor, state.agent.actor, obs, key)
        es, trans, ended_return = env_step(env, state.env, action, cfg.episode_length)
        state = state.replace(env=es, real=rb.buffer_add(state.real, trans),
                              env_steps=state.env_steps + cfg.num_envs)
        return state, ended_return

    # --- learn ---------------------------------------------------------------------------
    def sample_batch(state: TrainState, key: jax.Array, hp: HParams) -> Transition:
        """The real-data ratio: `real_ratio` of the batch is real, the rest imagined."""
        k_real, k_model = jax.random.split(key)
        real = rb.buffer_sample(state.real, k_real, cfg.batch_size)
        if state.model_buf is None:
            return real
        imagined = rb.buffer_sample(state.model_buf, k_model, cfg.batch_size)
        return mix_batches(real, imagined, n_real_rows(hp.real_ratio, cfg.batch_size, state.model_buf.size))

    def learn_steps(state: TrainState, key: jax.Array, hp: HParams):
        """`updates_per_step` gradient steps on batches from the buffers.

        The buffers do not change between these updates, so every update's batch is drawn up
        front, in one batched gather (the same rows, from the same keys, as drawing each inside its
        update): fewer, larger kernels per env step on an accelerator."""
        target_fn = vx.make_target_fn(cfg, dynamics, state.model) if value_expansion else sac_target
        k_batch, k_learn = jnp.moveaxis(jax.vmap(jax.random.split)(jax.random.split(key, cfg.updates_per_step)), 1, 0)
        batches = jax.vmap(lambda k: sample_batch(state, k, hp))(k_batch)

        def one(agent, xs):
            batch, kl = xs
            return learn(nets, agent, batch, kl, hp, target_fn=target_fn)

        agent, metrics = jax.lax.scan(one, state.agent, (batches, k_learn))
        return state.replace(agent=agent), jax.tree_util.tree_map(jnp.mean, metrics)

    def step(state: TrainState, hp: HParams):
        key, k_collect, k_learn = jax.random.split(state.key, 3)
        state, ended = collect(state.replace(key=key), k_collect, random_actions=False)
        state, metrics = learn_steps(state, k_learn, hp)
        return state, (metrics, ended)

    # --- fit model + imagine (Dyna family) ----------------------------------------------
    def fit(state: TrainState, key: jax.Array, hp: HParams):
        """Refit the ensemble on the real buffer (nothing to fit for the oracle)."""
        if cfg.model != "learned":
            return state, {}
        model, metrics = mdl.fit_model(cfg, ens, state.model, state.real, key, hp)
        return state.replace(model=model), metrics

    def imagine(state: TrainState, k_start: jax.Array, k_roll: jax.Array, hp: HParams):
        """Branch rollouts from real states; they replace the oldest round in the model buffer."""
        start = rb.buffer_sample(state.real, k_start, cfg.rollout_batch_size)
        length = mdl.rollout_length(hp, state.env_steps, cfg.warmup_steps)
        policy = lambda obs, k: sample_action(nets.actor, state.agent.actor, obs, k)
        trans, valid = mdl.imagine(cfg, dynamics, state.model, start, policy, length, k_roll)
        model_buf, sizes = mdl.evict_and_add(state.model_buf, state.refit_sizes, trans, valid)
        metrics = {"rollout_length": length,
                   "imagined_terminal_frac": jnp.sum(trans.terminal * valid) / jnp.maximum(jnp.sum(valid), 1.0),
                   "model_buffer_size": model_buf.size}
        return state.replace(model_buf=model_buf, refit_sizes=sizes), metrics

    def refit_and_imagine(state: TrainState, hp: HParams):
        key, k_fit, k_start, k_roll = jax.random.split(state.key, 4)
        state, metrics = fit(state.replace(key=key), k_fit, hp)
        if not dyna_style:
            return state, metrics
        state, more = imagine(state, k_start, k_roll, hp)
        return state, {**metrics, **more}

    def chunk(state: TrainState, hp: HParams):
        extra = {}
        if cfg.model_based:
            state, extra = refit_and_imagine(state, hp)
        state, (metrics, ended) = jax.lax.scan(lambda s, _: step(s, hp), state, None, length=cfg.chunk_steps)
        metrics = jax.tree_util.tree_map(jnp.mean, metrics)
        return state, ({**metrics, **extra}, ended)

    def end_period(state: TrainState, ended, metrics: dict):
        """After a period's chunks: evaluate; the period's metrics (the last chunk's, the mean
        return of the episodes that ended in the period, the evaluation). `ended` holds each
        chunk's per-step returns, stacked or as a tuple of the chunks'."""
        if isinstance(ended, tuple):
            ended = jnp.stack(ended)
        key, k_eval = jax.random.split(state.key)
        eval_return, eval_length = run_eval(state, k_eval)
        n_ended = jnp.sum(~jnp.isnan(ended))
        metrics = {**metrics, "env_steps": state.env_steps, "eval_return": eval_return,
                   "eval_length": eval_length,
                   "train_return": jnp.where(n_ended > 0, jnp.nansum(ended) / jnp.maximum(n_ended, 1), jnp.nan)}
        if progress_fn is not None:
            jax.debug.callback(progress_fn, metrics)
        return state.replace(key=key), metrics

    def period(state: TrainState, hp: HParams):
        state, (metrics, ended) = jax.lax.scan(lambda s, _: chunk(s, hp), state, None, length=cfg.chunks_per_eval)
        return end_period(state, ended, jax.tree_util.tree_map(lambda x: x[-1], metrics))

    # --- the program ---------------------------------------------------------------------
    def init(key: jax.Array, hp: HParams) -> TrainState:
        key, k_env, k_agent, k_model, k_warm = jax.random.split(key, 5)
        example = _example_transition(obs_size, act_size)
        model = model_buf = sizes = None
        if cfg.model == "learned":
            model = mdl.model_init(ens, k_model)
        if cfg.model_based and dyna_style:
            model_buf = rb.buffer_init(example, cfg.rollout_batch_size * cfg.max_rollout_length * cfg.model_retain)
            sizes = jnp.zeros(cfg.model_retain, jnp.int32)
        state = TrainState(agent=agent_init(nets, k_agent, obs_size, hp), env=env_reset(env, k_env, cfg.num_envs),
                           real=rb.buffer_init(example, real_capacity(cfg)), model=model, model_buf=model_buf,
                           refit_sizes=sizes, key=key, env_steps=jnp.int32(0))

        def warm(s, k):
            return collect(s, k, random_actions=True)[0], None

        state, _ = jax.lax.scan(warm, state, jax.random.split(k_warm, cfg.warmup_steps // cfg.num_envs))
        return state

    def advance(state: TrainState, hp: HParams):
        return jax.lax.scan(lambda s, _: period(s, hp), state, None, length=periods)

    def train(key: jax.Array, hp: HParams):
        return advance(init(key, hp), hp)

    parts = Parts(collect=collect, learn=learn_steps, fit_model=fit, imagine=imagine, evaluate=run_eval)
    return Program(init=init, advance=advance, train=train, num_evals=periods, parts=parts, chunk=chunk,
                   end_period=end_period)
