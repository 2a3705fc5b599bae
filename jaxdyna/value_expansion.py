"""Value expansion: imagined rollouts shape the critic's TD target; Q is fit on real data.

MVE (Feinberg et al. 2018): from each real transition's next state, roll the model H steps under
the current policy and regress Q(s, a) on

    T_H = r + gamma (1 - d) [ sum_{i<H} gamma^i c_i r_i  +  gamma^H c_H V(s_H) ],

where c_i = 1 while no imagined termination has happened before step i, and V is the soft value
of the target critic (as in SAC). H = 0 is exactly SAC's target. With TD-k, Q is also fit on
every imagined (s_i, a_i) along the path, each with its own expanded target.

STEVE (Buckman et al. 2018): candidate targets T_h^{m,q} for every horizon h = 0..H, every model
member m (its own rollout) and every Q head q; per horizon, the mean over (m, q) is weighted by
the inverse of its variance across (m, q), normalised over horizons.

Imagined rewards are the model's (or the oracle's) rewards; the entropy bonus enters only through
the bootstrap value V, so H = 0 reproduces SAC exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdyna import model as mdl
from jaxdyna.networks import sample_action
from jaxdyna.sac import CriticTargets, Nets, one_step_target, sac_target, soft_value
from jaxdyna.termination import KNOWN


def expanded_returns(rewards, cont, values, gamma, h):
    """G_i for i = 0..H: G_i = V_i for i >= h, else r_i + gamma * (cont_{i+1}/cont_i) G_{i+1}.

    `cont` is cumulative, so along a live path cont_{i+1} is just "step i did not terminate".
    G_0 is the h-step expanded value of the first imagined state.
    """
    H = rewards.shape[0]
    if H == 0:
        return values

    def back(g_next, i):
        g = jnp.where(i >= h, values[i], rewards[i] + gamma * cont[i + 1] * g_next)
        return g, g

    _, gs = jax.lax.scan(back, values[H], jnp.arange(H - 1, -1, -1))
    return jnp.concatenate([gs[::-1], values[H:]])


def _horizon(hp, max_h: int):
    return jnp.clip(jnp.round(hp.horizon), 0, max_h).astype(jnp.int32)


def make_mve_target(cfg, ens, model, env):
    """MVE target function (closes over the current model state)."""
    H = cfg.value_horizon
    step_fn = mdl.make_step_fn(cfg, ens, model, env)      # a random elite per sample, or the oracle

    if H == 0:
        return sac_target

    def target_fn(nets: Nets, agent, batch, key, hp) -> CriticTargets:
        k_roll, k_vals = jax.random.split(jax.random.fold_in(key, 1))
        policy = lambda o, k, _t: sample_action(nets.actor, agent.actor, o, k)[0]
        obs, acts, rews, cont = mdl.rollout(step_fn, policy, batch.next_obs, k_roll, H)
        v0 = soft_value(nets, agent, obs[0], key)
        values = v0[None]
        if H:
            vs = jax.vmap(lambda o, k: soft_value(nets, agent, o, k))(obs[1:], jax.random.split(k_vals, H))
            values = jnp.concatenate([values, vs])
        h = _horizon(hp, H)
        g = expanded_returns(hp.reward_scale * rews, cont, values, hp.gamma, h)
        expanded = hp.reward_scale * batch.reward + hp.gamma * (1.0 - batch.terminal) * g[0]
        # an effective horizon of 0 is SAC's one-step target, computed the same way
        target = jnp.where(h == 0, one_step_target(nets, agent, batch, key, hp), expanded)
        ones = jnp.ones_like(target)
        if not cfg.td_k or H == 0:
            return CriticTargets(batch.obs, batch.action, target, ones)
        # TD-k: every imagined (s_i, a_i), i < h, regressed on its own expanded target G_i
        live = (1.0 - batch.terminal)[None] * cont[:H] * (jnp.arange(H) < h)[:, None]
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        return CriticTargets(obs=jnp.concatenate([batch.obs, flat(obs[:H])]),
                             action=jnp.concatenate([batch.action, flat(acts)]),
                             target=jnp.concatenate([target, flat(g[:H])]),
                             weight=jnp.concatenate([ones, flat(live)]))

    return target_fn


def inverse_variance_weights(candidates, h):
    """STEVE weights over horizons from candidates [H+1, N, B] (N = members x Q heads).

    Returns (weights [H+1, B], summing to one over horizons <= h, zero beyond h; means [H+1, B]).
    """
    mean = jnp.mean(candidates, axis=1)
    var = jnp.var(candidates, axis=1)
    inv = jnp.where((jnp.arange(candidates.shape[0]) <= h)[:, None], 1.0 / (var + 1e-8), 0.0)
    return inv / jnp.sum(inv, axis=0, keepdims=True), mean


def make_steve_target(cfg, ens, model, env):
    """STEVE target function: per-member rollouts, per-Q-head bootstraps, inverse-variance mix."""
    H = cfg.value_horizon
    members = 1 if cfg.model == "oracle" else cfg.ensemble_size
    if cfg.model == "oracle":
        base = mdl.make_step_fn(cfg, ens, model, env)
        step_fn = lambda o, a, k: jax.tree_util.tree_map(lambda x: x[None], base(o[0], a[0], k))
    else:
        known = KNOWN.get(cfg.env)

        def step_fn(o, a, k):                                   # o: [M, B, d], member m rolls row m
            mean, logvar = mdl.ensemble_forward(model.params, mdl._inputs(model, o, a))
            y = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k, mean.shape)
            y = y * model.out_std + model.out_mean
            nxt, r = o + y[..., :ens.obs_size], y[..., ens.obs_size]
            if cfg.termination == "learned":
                term = (y[..., ens.obs_size + 1] > 0.5).astype(jnp.float32)
            elif cfg.termination == "known":
                term = known(nxt)
            else:
                term = jnp.zeros_like(r)
            return nxt, r, term

    def head_values(nets, agent, o, k):
        """Soft value per Q head: Q_target_q(s, a') - alpha log pi(a'|s)  -> [..., heads]."""
        a, logp = sample_action(nets.actor, agent.actor, o, k)
        q = nets.critic.apply(agent.target_critic, o, a)
        return q - jnp.exp(agent.log_alpha) * logp[..., None]

    def target_fn(nets: Nets, agent, batch, key, hp) -> CriticTargets:
        k_roll, k_vals = jax.random.split(key)
        start = jnp.broadcast_to(batch.next_obs, (members,) + batch.next_obs.shape)
        policy = lambda o, k, _t: sample_action(nets.actor, agent.actor, o, k)[0]
        obs, _, rews, cont = mdl.rollout(step_fn, policy, start, k_roll, H)          # [H(+1), M, B]
        vals = jax.vmap(lambda o, k: head_values(nets, agent, o, k))(obs, jax.random.split(k_vals, H + 1))
        # partial sums of discounted imagined rewards: S_h = sum_{i<h} gamma^i cont_i r_i
        disc = hp.gamma ** jnp.arange(H + 1.0)
        steps = disc[:H, None, None] * cont[:H] * hp.reward_scale * rews
        partial = jnp.concatenate([jnp.zeros_like(rews[:1]), jnp.cumsum(steps, axis=0)])  # [H+1, M, B]
        boot = (disc[:, None, None] * cont)[..., None] * vals                            # [H+1, M, B, Q]
        inner = partial[..., None] + boot
        cand = hp.reward_scale * batch.reward[None, None, :, None] \
            + hp.gamma * (1.0 - batch.terminal)[None, None, :, None] * inner
        cand = jnp.moveaxis(cand, 3, 2).reshape(H + 1, -1, batch.reward.shape[0])      # [H+1, M*Q, B]
        w, mean = inverse_variance_weights(cand, _horizon(hp, H))
        target = jnp.sum(w * mean, axis=0)
        return CriticTargets(batch.obs, batch.action, target, jnp.ones_like(target))

    return target_fn


def make_target_fn(cfg, ens, model, env):
    return make_mve_target(cfg, ens, model, env) if cfg.algo == "mve" else make_steve_target(cfg, ens, model, env)
