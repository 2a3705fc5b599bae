"""The probabilistic model ensemble, `fit_model`, and `imagine` (branched rollouts).

Each member predicts a diagonal Gaussian over the normalised targets (next_obs - obs, reward
[, terminal]) from the normalised input (obs, action). Members are one params pytree with a
leading member axis, run with `vmap`. Loss: Gaussian NLL with learned soft log-variance bounds
plus L2 weight decay (Chua et al. 2018; Janner et al. 2019).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxdyna import buffer as rb
from jaxdyna import termination as term_fns
from jaxdyna.envs import Transition

_adam = optax.scale_by_adam()


class Ensemble(NamedTuple):
    """Static description of the ensemble (shapes and sizes)."""
    sizes: tuple[int, ...]        # in, hidden..., 2 * out
    obs_size: int
    act_size: int
    out_size: int                 # obs_size + 1 (reward) [+ 1 (terminal)]
    members: int
    elites: int
    learned_termination: bool


@struct.dataclass
class ModelState:
    params: Any                   # {"layers": [(W [E, i, o], b [E, o])], "max_logvar", "min_logvar"}
    opt: Any
    in_mean: jax.Array
    in_std: jax.Array
    out_mean: jax.Array
    out_std: jax.Array
    elites: jax.Array             # int32 [num_elites]
    holdout_loss: jax.Array       # float32 [members]: holdout MSE of the kept snapshot


def make_ensemble(cfg, obs_size: int, act_size: int) -> Ensemble:
    learned_term = cfg.termination == "learned"
    out = obs_size + 1 + int(learned_term)
    return Ensemble(sizes=(obs_size + act_size, *cfg.model_hidden, 2 * out), obs_size=obs_size,
                    act_size=act_size, out_size=out, members=cfg.ensemble_size, elites=cfg.num_elites,
                    learned_termination=learned_term)


def model_init(cfg, ens: Ensemble, key: jax.Array, obs_size: int, act_size: int) -> ModelState:
    layers = []
    for i, (n_in, n_out) in enumerate(zip(ens.sizes[:-1], ens.sizes[1:])):
        k = jax.random.fold_in(key, i)
        w = jax.random.truncated_normal(k, -2, 2, (ens.members, n_in, n_out)) / jnp.sqrt(2.0 * n_in)
        layers.append((w, jnp.zeros((ens.members, n_out))))
    params = {"layers": layers, "max_logvar": jnp.full((ens.out_size,), 0.5),
              "min_logvar": jnp.full((ens.out_size,), -10.0)}
    n_in = ens.sizes[0]
    return ModelState(params=params, opt=_adam.init(params), in_mean=jnp.zeros(n_in), in_std=jnp.ones(n_in),
                      out_mean=jnp.zeros(ens.out_size), out_std=jnp.ones(ens.out_size),
                      elites=jnp.arange(ens.elites, dtype=jnp.int32), holdout_loss=jnp.zeros(ens.members))


# --- forward ------------------------------------------------------------------------------
def _member_forward(layers, max_logvar, min_logvar, x):
    for w, b in layers[:-1]:
        x = jax.nn.swish(x @ w + b)
    w, b = layers[-1]
    out = x @ w + b
    mean, logvar = jnp.split(out, 2, axis=-1)
    logvar = max_logvar - jax.nn.softplus(max_logvar - logvar)
    logvar = min_logvar + jax.nn.softplus(logvar - min_logvar)
    return mean, logvar


def ensemble_forward(params, x_norm):
    """Normalised input [E, B, in] (or [B, in], shared) -> normalised (mean, logvar) [E, B, out]."""
    in_axis = 0 if x_norm.ndim == 3 else None
    return jax.vmap(_member_forward, in_axes=(0, None, None, in_axis))(
        params["layers"], params["max_logvar"], params["min_logvar"], x_norm)


def _inputs(model: ModelState, obs, act):
    return (jnp.concatenate([obs, act], axis=-1) - model.in_mean) / model.in_std


def _targets(ens: Ensemble, t: Transition):
    cols = [t.next_obs - t.obs, t.reward[..., None]]
    if ens.learned_termination:
        cols.append(t.terminal[..., None])
    return jnp.concatenate(cols, axis=-1)


def predict(ens: Ensemble, model: ModelState, obs, act, key, member=None):
    """Sample (next_obs, reward, terminal-logit-or-None) with one random elite per sample."""
    k_member, k_noise = jax.random.split(key)
    mean, logvar = ensemble_forward(model.params, _inputs(model, obs, act))      # [E, B, out]
    if member is None:
        member = model.elites[jax.random.randint(k_member, obs.shape[:1], 0, ens.elites)]
    pick = jnp.arange(obs.shape[0])
    mean, logvar = mean[member, pick], logvar[member, pick]
    y = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_noise, mean.shape)
    y = y * model.out_std + model.out_mean
    next_obs = obs + y[:, :ens.obs_size]
    reward = y[:, ens.obs_size]
    learned_term = y[:, ens.obs_size + 1] if ens.learned_termination else None
    return next_obs, reward, learned_term


def predictive_std(ens: Ensemble, model: ModelState, obs, act):
    """Total predictive std (aleatoric + across-member spread) per sample, in target units."""
    mean, logvar = ensemble_forward(model.params, _inputs(model, obs, act))
    var = jnp.mean(jnp.exp(logvar), axis=0) + jnp.var(mean, axis=0)
    return jnp.sqrt(var) * model.out_std


# --- fit model ----------------------------------------------------------------------------
def _nll(params, x, y, weight_decay):
    mean, logvar = ensemble_forward(params, x)
    per_member = jnp.mean((mean - y) ** 2 * jnp.exp(-logvar) + logvar, axis=(1, 2))
    bounds = 0.01 * (jnp.sum(params["max_logvar"]) - jnp.sum(params["min_logvar"]))
    decay = weight_decay * sum(jnp.sum(w ** 2) for w, _ in params["layers"])
    return jnp.sum(per_member) + bounds + decay


def _holdout_mse(params, x, y, mask):
    mean, _ = ensemble_forward(params, x)
    err = jnp.mean((mean - y) ** 2, axis=-1)                         # [E, H]
    return jnp.sum(err * mask, axis=1) / jnp.maximum(jnp.sum(mask), 1.0)


def fit_model(cfg, ens: Ensemble, model: ModelState, real: rb.Buffer, key: jax.Array, hp):
    """Train the ensemble on real data only until holdout loss stops improving.

    The newest `model_max_train` real transitions are shuffled and split into holdout (20%,
    at most `model_max_holdout`) and training rows. An epoch is ceil(n_train / batch) Adam
    steps, each member drawing its own minibatch. After every epoch each member's holdout MSE
    is scored; a member's best snapshot is kept; training stops after `model_patience` epochs
    without a >1% improvement of any member (or at `model_max_epochs`). Elites = the members
    with the lowest holdout loss. All of it is one bounded `while_loop`.
    """
    m_max, b = cfg.model_max_train, cfg.model_batch_size
    h_max = min(cfg.model_max_holdout, int(cfg.model_holdout_ratio * m_max) or 1)
    k_perm, k_loop = jax.random.split(key)

    # the newest rows, shuffled, valid ones first
    n = jnp.minimum(real.size, m_max)
    newest = (real.ptr - 1 - jnp.arange(m_max)) % real.capacity
    valid = jnp.arange(m_max) < n
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(k_perm, (m_max,)), 2.0))
    data = rb.buffer_gather(real, newest[order])
    n_hold = jnp.minimum(jnp.floor(cfg.model_holdout_ratio * n).astype(jnp.int32), h_max)
    n_hold = jnp.maximum(n_hold, 1)
    n_train = jnp.maximum(n - n_hold, 1)

    # normalisers from the training window
    x_all = jnp.concatenate([data.obs, data.action], axis=-1)
    y_all = _targets(ens, data)
    w = valid[:, None].astype(jnp.float32)

    def stats(v):
        mu = jnp.sum(v * w, 0) / jnp.maximum(n, 1)
        sd = jnp.sqrt(jnp.sum((v - mu) ** 2 * w, 0) / jnp.maximum(n, 1))
        return mu, jnp.where(sd < 1e-6, 1.0, sd)

    in_mean, in_std = stats(x_all)
    out_mean, out_std = stats(y_all)
    x_all, y_all = (x_all - in_mean) / in_std, (y_all - out_mean) / out_std
    x_hold, y_hold = x_all[:h_max], y_all[:h_max]
    hold_mask = (jnp.arange(h_max) < n_hold).astype(jnp.float32)

    steps_per_epoch = (n_train + b - 1) // b

    def train_step(carry, k):
        params, opt = carry
        idx = n_hold + jax.random.randint(k, (ens.members, b), 0, n_train)
        grads = jax.grad(_nll)(params, x_all[idx], y_all[idx], hp.model_weight_decay)
        updates, opt = _adam.update(grads, opt, params)
        params = optax.apply_updates(params, jax.tree_util.tree_map(lambda u: -hp.model_lr * u, updates))
        return params, opt

    def epoch(state):
        params, opt, best_params, best, since, i, k = state
        k, k_epoch = jax.random.split(k)
        params, opt = jax.lax.fori_loop(
            0, steps_per_epoch, lambda j, c: train_step(c, jax.random.fold_in(k_epoch, j)), (params, opt))
        loss = _holdout_mse(params, x_hold, y_hold, hold_mask)
        improved = (best - loss) / jnp.abs(best) > 0.01
        per_member = lambda p, q: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, q)
        best_params = {"layers": jax.tree_util.tree_map(per_member, params["layers"], best_params["layers"]),
                       **{k: jnp.where(jnp.any(improved), params[k], best_params[k])
                          for k in ("max_logvar", "min_logvar")}}
        best = jnp.where(improved, loss, best)
        since = jnp.where(jnp.any(improved), 0, since + 1)
        return params, opt, best_params, best, since, i + 1, k

    def keep_going(state):
        *_, since, i, _ = state
        return (i < cfg.model_max_epochs) & (since < cfg.model_patience)

    params = model.params
    first = _holdout_mse(params, x_hold, y_hold, hold_mask)
    init = (params, model.opt, params, first, jnp.int32(0), jnp.int32(0), k_loop)
    params, opt, best_params, best, _, epochs, _ = jax.lax.while_loop(keep_going, epoch, init)
    elites = jnp.argsort(best)[: ens.elites].astype(jnp.int32)
    new = ModelState(params=best_params, opt=opt, in_mean=in_mean, in_std=in_std, out_mean=out_mean,
                     out_std=out_std, elites=elites, holdout_loss=best)
    metrics = {"model_holdout_loss": jnp.mean(best[elites]), "model_epochs": epochs, "model_elites": elites}
    return new, metrics


# --- imagine ------------------------------------------------------------------------------
def rollout_length(hp, env_steps) -> jax.Array:
    """MBPO's linear schedule [start_epoch, end_epoch, min_len, max_len], as an int."""
    epoch = env_steps / hp.epoch_length
    frac = jnp.clip((epoch - hp.rollout_start_epoch) / jnp.maximum(hp.rollout_end_epoch - hp.rollout_start_epoch, 1e-9),
                    0.0, 1.0)
    return jnp.floor(hp.rollout_min_len + frac * (hp.rollout_max_len - hp.rollout_min_len)).astype(jnp.int32)


def make_step_fn(cfg, ens: Ensemble | None, model: ModelState | None, env) -> Callable:
    """`step(obs, act, key) -> (next_obs, reward, terminal)` for the configured model."""
    if cfg.model == "oracle":
        from jaxdyna.envs import oracle_step
        return lambda obs, act, key: oracle_step(env, cfg.env, obs, act)
    known = term_fns.KNOWN.get(cfg.env)

    def step(obs, act, key):
        next_obs, reward, term_logit = predict(ens, model, obs, act, key)
        if cfg.termination == "learned":
            terminal = (term_logit > 0.5).astype(jnp.float32)
        elif cfg.termination == "known":
            terminal = known(next_obs)
        else:
            terminal = jnp.zeros_like(reward)
        return next_obs, reward, terminal

    return step


def rollout(step_fn, policy, obs, key, horizon: int):
    """`horizon` imagined steps from `obs` ([..., B, d]): the one rollout loop of the package.

    `policy(obs, key, t) -> action`; `step_fn(obs, action, key) -> (next_obs, reward, terminal)`.
    Returns obs [H+1, ...], actions [H, ...], rewards [H, ...], cont [H+1, ...] where cont[i] = 1
    when no imagined termination happened before reaching state i (cont[0] = 1). Dyna / MBPO
    (`imagine`) store the path in the model buffer; MVE / STEVE use it for targets.
    """
    def body(carry, xs):
        o, alive = carry
        t, k = xs
        k_act, k_step = jax.random.split(k)
        a = policy(o, k_act, t)
        o2, r, term = step_fn(o, a, k_step)
        return (o2, alive * (1.0 - term)), (o, a, r, alive)

    ones = jnp.ones(obs.shape[:-1])
    (last, alive), (os_, acts, rews, conts) = jax.lax.scan(
        body, (obs, ones), (jnp.arange(horizon), jax.random.split(key, horizon)))
    return jnp.concatenate([os_, last[None]]), acts, rews, jnp.concatenate([conts, alive[None]])


def imagine(cfg, ens, model, env, start: Transition, policy, length, key):
    """Branched rollouts of `length` (traced, <= max_rollout_length) steps from buffer states.

    Actions: the stored action on the first step (`buffer`, classic Dyna), the latest policy
    (`policy`, MBPO) or uniform (`random`). Each step a random elite per sample. Rollouts stop
    after a (predicted) termination. Returns transitions [max_len * B] and their validity mask.
    """
    def act(obs, k, t):
        if cfg.action_source == "random":
            return jax.random.uniform(k, start.action.shape, minval=-1.0, maxval=1.0)
        a = policy(obs, k)
        return jnp.where(t == 0, start.action, a) if cfg.action_source == "buffer" else a

    H = cfg.max_rollout_length
    obs, acts, rews, cont = rollout(make_step_fn(cfg, ens, model, env), act, start.obs, key, H)
    alive = cont[:-1] > 0.5
    # on a live step, the step terminated exactly when the next state is no longer live
    trans = Transition(obs=obs[:-1], action=acts, reward=rews, next_obs=obs[1:], terminal=alive * (1.0 - cont[1:]))
    valid = alive & (jnp.arange(H)[:, None] < length)
    flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), trans)
    return flat, valid.reshape(-1)


def evict_and_add(model_buf: rb.Buffer, sizes: jax.Array, trans: Transition, valid: jax.Array):
    """Model-buffer eviction: keep the rollouts of the last N-1 rounds, then add this round's.

    N = len(sizes) = `model_retain`; N = 1 flushes the buffer on every refit.
    """
    keep = jnp.sum(sizes[:-1])
    model_buf = rb.buffer_add(rb.buffer_keep_newest(model_buf, keep), trans, valid)
    sizes = jnp.concatenate([jnp.sum(valid, dtype=jnp.int32)[None], sizes[:-1]])
    return model_buf, sizes
