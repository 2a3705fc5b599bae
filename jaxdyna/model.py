"""The probabilistic model ensemble, `fit_model`, the one dynamics step, and `imagine`.

Each member predicts a diagonal Gaussian over the targets (next_obs - obs, reward [, terminal])
from the normalised input (obs, action); as in MBPO (jannerm/mbpo `bnn.py`) and mbrl-lib, only
inputs are normalised, so holdout losses, elite ranking and the log-variance bounds are in the
targets' own units. Members are one params pytree with a leading member axis, run with `vmap`.
Loss: Gaussian NLL with learned soft log-variance bounds plus per-layer weight decay
sum_l 0.5 * decay_l * ||W_l||^2 (Chua et al. 2018; Janner et al. 2019, `constructor.py`).

`make_dynamics` builds the one model step every model-based method uses: `imagine` (Dyna, MBPO)
and the value-expansion targets (MVE, STEVE) take it; neither knows whether it is the learned
ensemble or the oracle, nor how termination is decided.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxdyna import buffer as rb
from jaxdyna import termination
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
    weight_decay: tuple[float, ...]   # one coefficient per layer
    matmul_dtype: str = "float32"     # dtype of the matmul inputs (cfg.model_matmul)


@struct.dataclass
class ModelState:
    params: Any                   # {"layers": [(W [E, i, o], b [E, o])], "max_logvar", "min_logvar"}
    opt: Any
    in_mean: jax.Array
    in_std: jax.Array
    elites: jax.Array             # int32 [num_elites]
    holdout_loss: jax.Array       # float32 [members]: holdout MSE of the kept snapshot


def make_ensemble(cfg, obs_size: int, act_size: int) -> Ensemble:
    learned_term = cfg.termination == "learned"
    out = obs_size + 1 + int(learned_term)
    n_layers = len(cfg.model_hidden) + 1
    decay = cfg.model_weight_decay * (n_layers if len(cfg.model_weight_decay) == 1 else 1)
    return Ensemble(sizes=(obs_size + act_size, *cfg.model_hidden, 2 * out), obs_size=obs_size,
                    act_size=act_size, out_size=out, members=cfg.ensemble_size, elites=cfg.num_elites,
                    learned_termination=learned_term, weight_decay=tuple(decay), matmul_dtype=cfg.model_matmul)


def model_init(ens: Ensemble, key: jax.Array) -> ModelState:
    layers = []
    for i, (n_in, n_out) in enumerate(zip(ens.sizes[:-1], ens.sizes[1:])):
        k = jax.random.fold_in(key, i)
        w = jax.random.truncated_normal(k, -2, 2, (ens.members, n_in, n_out)) / jnp.sqrt(2.0 * n_in)
        layers.append((w, jnp.zeros((ens.members, n_out))))
    params = {"layers": layers, "max_logvar": jnp.full((ens.out_size,), 0.5),
              "min_logvar": jnp.full((ens.out_size,), -10.0)}
    n_in = ens.sizes[0]
    return ModelState(params=params, opt=_adam.init(params), in_mean=jnp.zeros(n_in), in_std=jnp.ones(n_in),
                      elites=jnp.arange(ens.elites, dtype=jnp.int32), holdout_loss=jnp.zeros(ens.members))


# --- forward ------------------------------------------------------------------------------
def _dense(x, w, b, dtype):
    """x @ w + b with the product's inputs in `dtype`, summed in float32 (mixed precision)."""
    if dtype == "float32":
        return x @ w + b
    return jnp.matmul(x.astype(dtype), w.astype(dtype), preferred_element_type=jnp.float32) + b


def _member_forward(layers, max_logvar, min_logvar, x, dtype="float32"):
    for w, b in layers[:-1]:
        x = jax.nn.swish(_dense(x, w, b, dtype))
    w, b = layers[-1]
    out = _dense(x, w, b, dtype)
    mean, logvar = jnp.split(out, 2, axis=-1)
    logvar = max_logvar - jax.nn.softplus(max_logvar - logvar)
    logvar = min_logvar + jax.nn.softplus(logvar - min_logvar)
    return mean, logvar


def ensemble_forward(params, x_norm, dtype: str = "float32"):
    """Normalised input [E, B, in] (or [B, in], shared) -> (mean, logvar) [E, B, out] in target units.
    `dtype`: the matmul inputs' dtype (`Ensemble.matmul_dtype`)."""
    in_axis = 0 if x_norm.ndim == 3 else None
    return jax.vmap(_member_forward, in_axes=(0, None, None, in_axis, None))(
        params["layers"], params["max_logvar"], params["min_logvar"], x_norm, dtype)


def normalised_inputs(model: ModelState, obs, act):
    return (jnp.concatenate([obs, act], axis=-1) - model.in_mean) / model.in_std


def _targets(ens: Ensemble, t: Transition):
    cols = [t.next_obs - t.obs, t.reward[..., None]]
    if ens.learned_termination:
        cols.append(t.terminal[..., None])
    return jnp.concatenate(cols, axis=-1)


def _sample(mean, logvar, key):
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)


def predictive_std(ens: Ensemble, model: ModelState, obs, act):
    """Total predictive std (aleatoric + across-member spread) per sample, in target units."""
    mean, logvar = ensemble_forward(model.params, normalised_inputs(model, obs, act), ens.matmul_dtype)
    return jnp.sqrt(jnp.mean(jnp.exp(logvar), axis=0) + jnp.var(mean, axis=0))


# --- the one dynamics step ----------------------------------------------------------------
class Dynamics(NamedTuple):
    """The model step of a program, built once by `make_dynamics`.

    step(model, obs [B, d], act [B, a], key) -> (next_obs, reward, terminal): each row drawn from
        one random elite (MBPO's `fake_env.step`), or the oracle.
    step_members(model, obs [M, B, d], act [M, B, a], key) -> the same with a member axis: row m
        is rolled by ensemble member m (STEVE's per-member rollouts). M = `members`.
    """
    step: Callable
    step_members: Callable
    members: int


def make_dynamics(cfg, ens: Ensemble | None, env) -> Dynamics:
    """The dynamics for `cfg.model` (learned ensemble or oracle) with `termination.make(cfg)`."""
    if cfg.model == "oracle":
        from jaxdyna.envs import oracle_step

        def oracle(_model, obs, act, _key):
            return oracle_step(env, cfg.env, obs, act)

        def oracle_members(_model, obs, act, _key):       # one "member": the true step
            return jax.tree_util.tree_map(lambda x: x[None], oracle_step(env, cfg.env, obs[0], act[0]))

        return Dynamics(step=oracle, step_members=oracle_members, members=1)

    is_terminal = termination.make(cfg)

    def decode(obs, y):
        next_obs = obs + y[..., :ens.obs_size]
        reward = y[..., ens.obs_size]
        learned = y[..., ens.obs_size + 1] if ens.learned_termination else None
        return next_obs, reward, is_terminal(next_obs, learned)

    def step(model: ModelState, obs, act, key):
        """Each row through one elite: the rows are dealt at random into equal shares, one share per
        elite (mbrl-lib's `random_model` propagation: a `randperm` split into member shares).
        MBPO draws each row's elite independently; the marginal is the same (uniform over elites),
        the counts are balanced, and only the one member a row uses is computed (not all of them)."""
        k_deal, k_noise = jax.random.split(key)
        b, e = obs.shape[0], ens.elites
        share = -(-b // e)
        x = normalised_inputs(model, obs, act)
        x = jnp.concatenate([x, jnp.zeros((share * e - b, x.shape[1]), x.dtype)])     # pad to e equal shares
        deal = jax.random.permutation(k_deal, share * e)                                 # slot j holds row deal[j]
        layers = jax.tree_util.tree_map(lambda p: p[model.elites], model.params["layers"])
        mean, logvar = ensemble_forward({**model.params, "layers": layers}, x[deal].reshape(e, share, -1),
                                        ens.matmul_dtype)
        y = _sample(mean, logvar, k_noise).reshape(share * e, -1)
        y = jnp.zeros_like(y).at[deal].set(y)[:b]                                        # back to row order
        return decode(obs, y)

    def step_members(model: ModelState, obs, act, key):
        mean, logvar = ensemble_forward(model.params, normalised_inputs(model, obs, act),
                                        ens.matmul_dtype)                                    # [M, B, out]
        return decode(obs, _sample(mean, logvar, key))

    return Dynamics(step=step, step_members=step_members, members=ens.members)


# --- fit model ----------------------------------------------------------------------------
def _nll(params, x, y, weight, decay, dtype="float32"):
    mean, logvar = ensemble_forward(params, x, dtype)
    per_row = jnp.mean((mean - y) ** 2 * jnp.exp(-logvar) + logvar, axis=-1)          # [E, b]
    per_member = jnp.sum(per_row * weight, axis=1) / jnp.maximum(jnp.sum(weight, axis=1), 1.0)
    bounds = 0.01 * (jnp.sum(params["max_logvar"]) - jnp.sum(params["min_logvar"]))
    l2 = sum(0.5 * c * jnp.sum(w ** 2) for c, (w, _) in zip(decay, params["layers"]))
    return jnp.sum(per_member) + bounds + l2


def model_update(params, opt, x, y, weight, decay: tuple[float, ...], lr, dtype="float32"):
    """One Adam step of every member on its own batch: x [E, b, in], y [E, b, out], weight [E, b]."""
    grads = jax.grad(_nll)(params, x, y, weight, decay, dtype)
    updates, opt = _adam.update(grads, opt, params)
    return optax.apply_updates(params, jax.tree_util.tree_map(lambda u: -lr * u, updates)), opt


def _holdout_errors(params, x, y, dtype):
    mean, _ = ensemble_forward(params, x, dtype)
    return jnp.mean((mean - y) ** 2, axis=-1)                       # [E, rows]


def holdout_block_rows(h_max: int) -> int:
    """Rows scored at once by `_holdout_mse`. On a CPU, the holdout's `h_max` rows split evenly into
    blocks of at most 512: a block's activations stay in cache, and an early refit scores only the
    blocks that hold live rows, not the padded `h_max` (`results/holdout_blocks/`). Elsewhere all
    rows at once: one large batch, no loop of small kernels on an accelerator."""
    if jax.default_backend() != "cpu":
        return h_max
    return -(-h_max // -(-h_max // 512))


def _holdout_mse(params, x, y, mask, n, rows: int, dtype="float32"):
    """Each member's mean squared error over the holdout rows (`mask`: the first `n` of x's H rows).

    Scored `rows` rows at a time, up to row n; a last block that would pass row H ends at row H
    instead (its rows already scored get the same values again). A row's error does not depend on
    the block it is scored in, and rows past n keep an error of 0 with mask 0, so the loss is
    the same as scoring all H rows at once (XLA may fuse the sum differently: the last bit can differ)."""
    h = x.shape[0]
    if rows >= h:
        err = _holdout_errors(params, x, y, dtype)
    else:
        def score(i, err):
            start = jnp.minimum(i * rows, h - rows)
            block = (jax.lax.dynamic_slice_in_dim(x, start, rows), jax.lax.dynamic_slice_in_dim(y, start, rows))
            return jax.lax.dynamic_update_slice_in_dim(err, _holdout_errors(params, *block, dtype), start, axis=1)
        members = params["layers"][0][0].shape[0]
        err = jax.lax.fori_loop(0, (n + rows - 1) // rows, score, jnp.zeros((members, h), jnp.float32))
    return jnp.sum(err * mask, axis=1) / jnp.maximum(jnp.sum(mask), 1.0)


def refit_window(cfg, capacity: int) -> tuple[int, int]:
    """(m_max, h_max): how many of the newest real rows a refit reads (never more than the buffer's
    `capacity`: no padding past the run's data), and the holdout's static size."""
    m_max = min(cfg.model_max_train, capacity)
    return m_max, min(cfg.model_max_holdout, int(cfg.model_holdout_ratio * m_max) or 1)


def refit_sizes(cfg, capacity: int, real_rows: int) -> tuple[int, int, int]:
    """(h_max, n_hold, steps per epoch) of a refit with `real_rows` real rows, as `fit_model` traces
    them, in Python integers (for the benchmarks that count a refit's work)."""
    m_max, h_max = refit_window(cfg, capacity)
    n = min(real_rows, m_max)
    n_hold = max(1, min(int(cfg.model_holdout_ratio * n), h_max))
    return h_max, n_hold, -(-max(n - n_hold, 1) // cfg.model_batch_size)


def fit_model(cfg, ens: Ensemble, model: ModelState, real: rb.Buffer, key: jax.Array, hp):
    """Train the ensemble on real data only, as MBPO's `BNN.train` does (jannerm/mbpo `bnn.py`).

    The newest `model_max_train` real transitions are shuffled and split into holdout (20%, at
    most `model_max_holdout`) and training rows; the input normaliser is fit on the training
    rows. Each member trains on its own bootstrap resample of the training rows, drawn once per
    refit and reshuffled every epoch; an epoch is ceil(n_train / batch) Adam steps (the last
    batch partial). After each epoch every member's holdout MSE is scored; a member whose loss
    improved by more than 1% on its best (starting at 1e10) is snapshotted; training stops once
    more than `model_patience` epochs pass without any member improving (or at
    `model_max_epochs`, a bound MBPO does not have). The members' best snapshots are restored
    (the log-variance bounds keep their final values, as in MBPO) and the elites are the members
    with the lowest holdout loss. All of it is one bounded `while_loop`.
    """
    (m_max, h_max), b = refit_window(cfg, real.capacity), cfg.model_batch_size
    k_perm, k_boot, k_loop = jax.random.split(key, 3)

    # the newest rows, shuffled, valid ones first
    n = jnp.minimum(real.size, m_max)
    newest = (real.ptr - 1 - jnp.arange(m_max)) % real.capacity
    valid = jnp.arange(m_max) < n
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(k_perm, (m_max,)), 2.0))
    data = rb.buffer_gather(real, newest[order])
    n_hold = jnp.minimum(jnp.floor(cfg.model_holdout_ratio * n).astype(jnp.int32), h_max)
    n_hold = jnp.maximum(n_hold, 1)
    n_train = jnp.maximum(n - n_hold, 1)

    # input normaliser from the training rows (MBPO's `TensorStandardScaler.fit`)
    x_all = jnp.concatenate([data.obs, data.action], axis=-1)
    y_all = _targets(ens, data)
    rows = jnp.arange(m_max)
    w = ((rows >= n_hold) & (rows < n_hold + n_train)).astype(jnp.float32)[:, None]
    in_mean = jnp.sum(x_all * w, 0) / jnp.sum(w)
    in_std = jnp.sqrt(jnp.sum((x_all - in_mean) ** 2 * w, 0) / jnp.sum(w))
    in_std = jnp.where(in_std < 1e-12, 1.0, in_std)
    x_all = (x_all - in_mean) / in_std
    x_hold, y_hold = x_all[:h_max], y_all[:h_max]
    hold_mask = (jnp.arange(h_max) < n_hold).astype(jnp.float32)

    # per-member bootstrap of the training rows: boot[m, j] for j < n_train
    boot = n_hold + jax.random.randint(k_boot, (ens.members, m_max), 0, n_train)
    steps_per_epoch = (n_train + b - 1) // b
    cols = jnp.arange(m_max)

    def train_step(j, carry):
        params, opt, perm = carry
        pos = j * b + jnp.arange(b)                                   # this batch's positions
        idx = jnp.take_along_axis(boot, jnp.take(perm, jnp.minimum(pos, m_max - 1), axis=1), axis=1)
        weight = jnp.broadcast_to((pos < n_train).astype(jnp.float32), idx.shape)
        params, opt = model_update(params, opt, x_all[idx], y_all[idx], weight, ens.weight_decay, hp.model_lr,
                                   ens.matmul_dtype)
        return params, opt, perm

    def epoch(state):
        params, opt, best_layers, best, since, i, k = state
        k, k_shuffle = jax.random.split(k)
        # reshuffle each member's bootstrap sample (MBPO's `shuffle_rows`)
        u = jax.random.uniform(k_shuffle, (ens.members, m_max))
        perm = jnp.argsort(jnp.where(cols < n_train, u, 2.0), axis=1)
        params, opt, _ = jax.lax.fori_loop(0, steps_per_epoch, train_step, (params, opt, perm))
        loss = _holdout_mse(params, x_hold, y_hold, hold_mask, n_hold, holdout_block_rows(h_max),
                            ens.matmul_dtype)
        improved = (best - loss) / best > 0.01
        keep = lambda p, q: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, q)
        best_layers = jax.tree_util.tree_map(keep, params["layers"], best_layers)
        best = jnp.where(improved, loss, best)
        since = jnp.where(jnp.any(improved), 0, since + 1)
        return params, opt, best_layers, best, since, i + 1, k

    def keep_going(state):
        *_, since, i, _ = state
        return (i < cfg.model_max_epochs) & (since <= cfg.model_patience)

    params = model.params
    init = (params, model.opt, params["layers"], jnp.full((ens.members,), 1e10, jnp.float32),
            jnp.int32(0), jnp.int32(0), k_loop)
    params, opt, best_layers, best, _, epochs, _ = jax.lax.while_loop(keep_going, epoch, init)
    elites = jnp.argsort(best)[: ens.elites].astype(jnp.int32)
    new = ModelState(params={**params, "layers": best_layers}, opt=opt, in_mean=in_mean, in_std=in_std,
                     elites=elites, holdout_loss=best)
    metrics = {"model_holdout_loss": jnp.mean(best[elites]), "model_epochs": epochs, "model_elites": elites}
    return new, metrics


# --- imagine ------------------------------------------------------------------------------
def rollout_length(hp, env_steps, warmup_steps: int) -> jax.Array:
    """MBPO's linear schedule [start_epoch, end_epoch, min_len, max_len], as an int.

    As in MBPO (`_set_rollout_length`), the epoch is the index of the current training epoch,
    counted from the end of the random warm-up (MBPO's initial exploration steps).
    """
    epoch = jnp.floor((env_steps - warmup_steps) / hp.epoch_length)
    frac = jnp.clip((epoch - hp.rollout_start_epoch) / jnp.maximum(hp.rollout_end_epoch - hp.rollout_start_epoch, 1e-9),
                    0.0, 1.0)
    return jnp.floor(hp.rollout_min_len + frac * (hp.rollout_max_len - hp.rollout_min_len)).astype(jnp.int32)


class Path(NamedTuple):
    """An imagined path of H steps; leading axis time."""
    obs: jax.Array        # [H+1, ...]: obs[0] is the start state
    action: jax.Array     # [H, ...]
    logp: jax.Array       # [H, ...]: log pi(a_i | s_i) of the policy's actions (0 for other actions)
    reward: jax.Array     # [H, ...]
    cont: jax.Array       # [H+1, ...]: 1 while no imagined termination happened before state i


def rollout(step_fn, policy, obs, key, horizon: int, length: jax.Array | None = None) -> Path:
    """`horizon` imagined steps from `obs` ([..., B, d]): the one rollout loop of the package.

    `policy(obs, key, t) -> (action, logp)`; `step_fn(obs, action, key) -> (next_obs, reward,
    terminal)`. Step t uses `jax.random.split(key, horizon)[t]`, split again into the action key
    and the model key. Dyna / MBPO (`imagine`) store the path in the model buffer; MVE / STEVE
    use it for targets.

    With a traced `length` (<= horizon) only the first `length` steps are computed (a
    `while_loop`; MBPO's schedule grows the length over training, and the slots past it hold
    zeros that the caller masks); without it every step is a `scan` iteration.
    """
    keys = jax.random.split(key, horizon)

    def one_step(o, alive, t, k):
        k_act, k_step = jax.random.split(k)
        a, logp = policy(o, k_act, t)
        o2, r, term = step_fn(o, a, k_step)
        return o2, alive * (1.0 - term), (o, a, logp, r, alive)

    ones = jnp.ones(obs.shape[:-1])
    if length is None:
        def body(carry, xs):
            o2, alive, out = one_step(*carry, *xs)
            return (o2, alive), out

        (last, alive), (os_, acts, logps, rews, conts) = jax.lax.scan(body, (obs, ones), (jnp.arange(horizon), keys))
    else:
        shapes = jax.eval_shape(lambda o: one_step(o, ones, 0, key)[2], obs)
        stacked = jax.tree_util.tree_map(lambda s: jnp.zeros((horizon,) + s.shape, s.dtype), shapes)

        def body(t, carry):
            o, alive, path = carry
            o2, alive2, out = one_step(o, alive, t, keys[t])
            path = jax.tree_util.tree_map(lambda p, x: jax.lax.dynamic_update_index_in_dim(p, x, t, 0), path, out)
            return o2, alive2, path

        n = jnp.minimum(length, horizon)
        last, alive, (os_, acts, logps, rews, conts) = jax.lax.fori_loop(0, n, body, (obs, ones, stacked))
        # the state after the last computed step sits at index n (slot H when n == horizon)
        end = lambda p, x: jax.lax.dynamic_update_index_in_dim(jnp.concatenate([p, jnp.zeros_like(x)[None]]), x, n, 0)
        return Path(obs=end(os_, last), action=acts, logp=logps, reward=rews, cont=end(conts, alive))
    return Path(obs=jnp.concatenate([os_, last[None]]), action=acts, logp=logps, reward=rews,
                cont=jnp.concatenate([conts, alive[None]]))


def imagine(cfg, dynamics: Dynamics, model, start: Transition, policy, length, key):
    """Branched rollouts of `length` (traced, <= max_rollout_length) steps from buffer states.

    Actions: the stored action on the first step (`buffer`, classic Dyna), the latest policy
    (`policy`, MBPO) or uniform (`random`); `policy(obs, key) -> (action, logp)`. Each step a
    random elite per sample. Rollouts stop after a (predicted) termination. Returns transitions
    [max_len * B] and their validity mask.
    """
    def act(obs, k, t):
        if cfg.action_source == "random":
            a = jax.random.uniform(k, start.action.shape, minval=-1.0, maxval=1.0)
            return a, jnp.zeros(a.shape[:-1])
        a, logp = policy(obs, k)
        if cfg.action_source == "buffer":
            return jnp.where(t == 0, start.action, a), jnp.where(t == 0, 0.0, logp)
        return a, logp

    H = cfg.max_rollout_length
    step = lambda o, a, k: dynamics.step(model, o, a, k)
    path = rollout(step, act, start.obs, key, H, length)
    alive = path.cont[:-1] > 0.5
    # on a live step, the step terminated exactly when the next state is no longer live
    trans = Transition(obs=path.obs[:-1], action=path.action, reward=path.reward, next_obs=path.obs[1:],
                       terminal=alive * (1.0 - path.cont[1:]))
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
