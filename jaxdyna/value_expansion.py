"""Value expansion: imagined rollouts shape the critic's TD target; Q is fit on real data.

Both methods take the program's one `Dynamics` (`model.make_dynamics`) and roll it with
`model.rollout` from each real transition's next state s_1, actions a_i ~ pi(.|s_i).

MVE (Feinberg et al. 2018) with SAC's soft values: regress Q(s_0, a_0) on

    T_H = r_0 + gamma (1 - d_0) U_1,
    U_i = -alpha log pi(a_i|s_i) + r_i + gamma c_{i+1} U_{i+1}   (i < H),    U_H = V(s_H),

where c_i = 1 while no imagined termination has happened before state i and V(s) =
min_q Q_target_q(s, a') - alpha log pi(a'|s) is SAC's soft value. Every imagined action drawn
from the policy contributes its entropy term, so H = 0 is exactly SAC's target. With TD-k, Q is
also fit on every imagined (s_i, a_i), i < H, with its own target r_i + gamma c_{i+1} U_{i+1}.

STEVE (Buckman et al. 2018): candidate targets T_h^{m,q} for every horizon h = 0..H, every
ensemble member m (its own rollout) and every Q head q (the same soft terms, bootstrapping with
head q's soft value). Per horizon, the candidates' variance across (m, q) is the uncertainty
and the horizons are mixed with weights proportional to its inverse. The point estimate of a
horizon is `steve_heads`: `min` (per member the minimum over Q heads, SAC's clipped double Q,
then the mean over members; H = 0 is exactly SAC) or `mean` (the mean over all (m, q), the
paper's form with an ensemble of Q-functions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxdyna import model as mdl
from jaxdyna.networks import sample_action
from jaxdyna.sac import CriticTargets, Nets, one_step_target, sac_target, soft_value


def expanded_returns(soft_rewards, cont, values, gamma, h):
    """U_i for i = 0..H: U_i = V_i for i >= h, else u_i + gamma * c_{i+1} U_{i+1}.

    `soft_rewards` u_i = reward_scale * r_i - alpha log pi(a_i|s_i). `cont` is cumulative, so
    along a live path c_{i+1} is just "step i did not terminate". U_0 is the h-step expanded
    soft value of the first imagined state.
    """
    H = soft_rewards.shape[0]
    if H == 0:
        return values

    def back(u_next, i):
        u = jnp.where(i >= h, values[i], soft_rewards[i] + gamma * cont[i + 1] * u_next)
        return u, u

    _, us = jax.lax.scan(back, values[H], jnp.arange(H - 1, -1, -1))
    return jnp.concatenate([us[::-1], values[H:]])


def _horizon(hp, max_h: int):
    return jnp.clip(jnp.round(hp.horizon), 0, max_h).astype(jnp.int32)


def _policy(nets: Nets, agent):
    return lambda o, k, _t: sample_action(nets.actor, agent.actor, o, k)


def make_mve_target(cfg, dynamics: mdl.Dynamics, model):
    """MVE target function for the current model state."""
    H = cfg.value_horizon
    if H == 0:
        return sac_target
    step = lambda o, a, k: dynamics.step(model, o, a, k)         # a random elite per row, or the oracle

    def target_fn(nets: Nets, agent, batch, key, hp) -> CriticTargets:
        k_roll, k_vals = jax.random.split(jax.random.fold_in(key, 1))
        path = mdl.rollout(step, _policy(nets, agent), batch.next_obs, k_roll, H)
        alpha = jnp.exp(agent.log_alpha)
        v0 = soft_value(nets, agent, path.obs[0], key)
        vs = jax.vmap(lambda o, k: soft_value(nets, agent, o, k))(path.obs[1:], jax.random.split(k_vals, H))
        values = jnp.concatenate([v0[None], vs])
        h = _horizon(hp, H)
        soft = hp.reward_scale * path.reward - alpha * path.logp
        u = expanded_returns(soft, path.cont, values, hp.gamma, h)
        expanded = hp.reward_scale * batch.reward + hp.gamma * (1.0 - batch.terminal) * u[0]
        # an effective horizon of 0 is SAC's one-step target, computed the same way
        target = jnp.where(h == 0, one_step_target(nets, agent, batch, key, hp), expanded)
        ones = jnp.ones_like(target)
        if not cfg.td_k:
            return CriticTargets(batch.obs, batch.action, target, ones)
        # TD-k: every imagined (s_i, a_i), i < h, regressed on r_i + gamma c_{i+1} U_{i+1}
        # (= U_i without the entropy term of a_i itself)
        live = (1.0 - batch.terminal)[None] * path.cont[:H] * (jnp.arange(H) < h)[:, None]
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        return CriticTargets(obs=jnp.concatenate([batch.obs, flat(path.obs[:H])]),
                             action=jnp.concatenate([batch.action, flat(path.action)]),
                             target=jnp.concatenate([target, flat(u[:H] + alpha * path.logp)]),
                             weight=jnp.concatenate([ones, flat(live)]))

    return target_fn


def inverse_variance_weights(candidates, h):
    """STEVE weights over horizons from candidates [H+1, N, B] (N = members x Q heads).

    Returns weights [H+1, B], summing to one over horizons <= h and zero beyond h.
    """
    var = jnp.var(candidates, axis=1)
    inv = jnp.where((jnp.arange(candidates.shape[0]) <= h)[:, None], 1.0 / (var + 1e-8), 0.0)
    return inv / jnp.sum(inv, axis=0, keepdims=True)


def steve_candidates(soft_rewards, cont, head_values, gamma):
    """Candidate inner values per (horizon h, member, head) from per-member paths.

    soft_rewards [H, M, B], cont [H+1, M, B], head_values [H+1, M, B, Q] (soft value of each
    Q head at each imagined state). Returns [H+1, M, B, Q]:
    sum_{i<h} gamma^i c_i u_i + gamma^h c_h V_q(s_h).
    """
    H = soft_rewards.shape[0]
    disc = gamma ** jnp.arange(H + 1.0)
    steps = disc[:H, None, None] * cont[:H] * soft_rewards
    partial = jnp.concatenate([jnp.zeros_like(soft_rewards[:1]), jnp.cumsum(steps, axis=0)])   # [H+1, M, B]
    return partial[..., None] + (disc[:, None, None] * cont)[..., None] * head_values


def make_steve_target(cfg, dynamics: mdl.Dynamics, model):
    """STEVE target function: per-member rollouts, per-Q-head bootstraps, inverse-variance mix."""
    H, M = cfg.value_horizon, dynamics.members
    step = lambda o, a, k: dynamics.step_members(model, o, a, k)  # member m rolls row m

    def head_values(nets, agent, o, k):
        """Soft value per Q head: Q_target_q(s, a') - alpha log pi(a'|s)  -> [..., heads]."""
        a, logp = sample_action(nets.actor, agent.actor, o, k)
        q = nets.critic.apply(agent.target_critic, o, a)
        return q - jnp.exp(agent.log_alpha) * logp[..., None]

    def target_fn(nets: Nets, agent, batch, key, hp) -> CriticTargets:
        k_roll, k_vals = jax.random.split(jax.random.fold_in(key, 1))
        start = jnp.broadcast_to(batch.next_obs, (M,) + batch.next_obs.shape)
        path = mdl.rollout(step, _policy(nets, agent), start, k_roll, H)            # [H(+1), M, B]
        # horizon 0: the start state is shared by every member; its action sample is SAC's
        v0 = jnp.broadcast_to(head_values(nets, agent, batch.next_obs, key), (M,) + batch.reward.shape
                              + (cfg.num_critics,))
        vals = [v0[None]]
        if H:
            vals.append(jax.vmap(lambda o, k: head_values(nets, agent, o, k))(path.obs[1:], jax.random.split(k_vals, H)))
        soft = hp.reward_scale * path.reward - jnp.exp(agent.log_alpha) * path.logp
        inner = steve_candidates(soft, path.cont, jnp.concatenate(vals), hp.gamma)      # [H+1, M, B, Q]
        cand = hp.reward_scale * batch.reward[None, None, :, None] \
            + hp.gamma * (1.0 - batch.terminal)[None, None, :, None] * inner
        h = _horizon(hp, H)
        flat = jnp.moveaxis(cand, 3, 2).reshape(H + 1, -1, batch.reward.shape[0])       # [H+1, M*Q, B]
        w = inverse_variance_weights(flat, h)
        point = jnp.mean(cand.min(axis=-1), axis=1) if cfg.steve_heads == "min" else jnp.mean(flat, axis=1)
        target = jnp.sum(w * point, axis=0)
        if cfg.steve_heads == "min":      # an effective horizon of 0 is SAC's target, computed the same way
            target = jnp.where(h == 0, one_step_target(nets, agent, batch, key, hp), target)
        return CriticTargets(batch.obs, batch.action, target, jnp.ones_like(target))

    return target_fn


def make_target_fn(cfg, dynamics: mdl.Dynamics, model):
    make = make_mve_target if cfg.algo == "mve" else make_steve_target
    return make(cfg, dynamics, model)
