"""Soft actor-critic: twin Q, tanh-Gaussian actor, automatic entropy tuning, Polyak targets.

`learn` is one gradient step on a batch; `sac_target` is the one-step soft TD target. Value
expansion (MVE / STEVE) swaps in a different target function; everything else is shared.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxdyna.envs import Transition
from jaxdyna.networks import Actor, Critic, sample_action

_adam = optax.scale_by_adam()


@struct.dataclass
class AgentState:
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


class Nets(NamedTuple):
    actor: Actor
    critic: Critic
    action_size: int


def make_nets(cfg, action_size: int) -> Nets:
    return Nets(Actor(cfg.actor_hidden, action_size, cfg.policy_std), Critic(cfg.critic_hidden, cfg.num_critics), action_size)


def agent_init(nets: Nets, key: jax.Array, obs_size: int, hp) -> AgentState:
    ka, kc = jax.random.split(key)
    obs = jnp.zeros((1, obs_size))
    act = jnp.zeros((1, nets.action_size))
    actor = nets.actor.init(ka, obs)
    critic = nets.critic.init(kc, obs, act)
    log_alpha = jnp.log(jnp.asarray(hp.init_alpha, jnp.float32))
    return AgentState(actor=actor, critic=critic, target_critic=critic, log_alpha=log_alpha,
                      actor_opt=_adam.init(actor), critic_opt=_adam.init(critic),
                      alpha_opt=_adam.init(log_alpha))


def _adam_step(grads, opt_state, params, lr):
    updates, opt_state = _adam.update(grads, opt_state, params)
    return optax.apply_updates(params, jax.tree_util.tree_map(lambda u: -lr * u, updates)), opt_state


def target_entropy(hp, action_size: int) -> jax.Array:
    return jnp.where(jnp.isnan(hp.target_entropy), -float(action_size), hp.target_entropy)


def soft_value(nets: Nets, agent: AgentState, obs: jax.Array, key: jax.Array) -> jax.Array:
    """V(s) = min_i Q_target_i(s, a') - alpha log pi(a'|s), a' ~ pi(.|s)."""
    act, logp = sample_action(nets.actor, agent.actor, obs, key)
    q = nets.critic.apply(agent.target_critic, obs, act).min(axis=-1)
    return q - jnp.exp(agent.log_alpha) * logp


class CriticTargets(NamedTuple):
    """What the critic regresses: Q(obs, action) -> target, rows weighted by `weight`."""
    obs: jax.Array
    action: jax.Array
    target: jax.Array
    weight: jax.Array


def one_step_target(nets: Nets, agent: AgentState, batch: Transition, key: jax.Array, hp) -> jax.Array:
    """One-step soft TD target r + gamma (1 - terminal) V(s'). Time limits are not terminal."""
    v = soft_value(nets, agent, batch.next_obs, key)
    return hp.reward_scale * batch.reward + hp.gamma * (1.0 - batch.terminal) * v


def sac_target(nets: Nets, agent: AgentState, batch: Transition, key: jax.Array, hp) -> CriticTargets:
    """SAC: fit Q on the batch's own (s, a) with the one-step target."""
    target = one_step_target(nets, agent, batch, key, hp)
    return CriticTargets(batch.obs, batch.action, target, jnp.ones_like(target))


TargetFn = Callable[[Nets, AgentState, Transition, jax.Array, Any], CriticTargets]


def learn(nets: Nets, agent: AgentState, batch: Transition, key: jax.Array, hp,
          target_fn: TargetFn = sac_target):
    """One SAC gradient step: temperature, critic, actor, then the Polyak target update.

    `target_fn` says what the critic regresses on (SAC: the one-step target on the batch;
    MVE / STEVE: value-expanded targets, and with TD-k also imagined states).
    """
    k_alpha, k_target, k_actor = jax.random.split(key, 3)
    alpha = jnp.exp(agent.log_alpha)

    # temperature
    _, logp = sample_action(nets.actor, agent.actor, batch.obs, k_alpha)
    ent_target = target_entropy(hp, nets.action_size)

    def alpha_loss_fn(log_alpha):
        return -jnp.mean(log_alpha * jax.lax.stop_gradient(logp + ent_target))

    alpha_loss, g = jax.value_and_grad(alpha_loss_fn)(agent.log_alpha)
    log_alpha, alpha_opt = _adam_step(g, agent.alpha_opt, agent.log_alpha, hp.alpha_lr)

    # critic
    ct = jax.lax.stop_gradient(target_fn(nets, agent, batch, k_target, hp))

    def critic_loss_fn(params):
        q = nets.critic.apply(params, ct.obs, ct.action)
        err = jnp.sum((q - ct.target[..., None]) ** 2, axis=-1)     # summed over Q heads
        return 0.5 * jnp.sum(err * ct.weight) / jnp.maximum(jnp.sum(ct.weight), 1.0), q

    (critic_loss, q), g = jax.value_and_grad(critic_loss_fn, has_aux=True)(agent.critic)
    critic, critic_opt = _adam_step(g, agent.critic_opt, agent.critic, hp.critic_lr)

    # actor
    def actor_loss_fn(params):
        act, logp = sample_action(nets.actor, params, batch.obs, k_actor)
        qv = nets.critic.apply(critic, batch.obs, act).min(axis=-1)
        return jnp.mean(alpha * logp - qv), -jnp.mean(logp)

    (actor_loss, entropy), g = jax.value_and_grad(actor_loss_fn, has_aux=True)(agent.actor)
    actor, actor_opt = _adam_step(g, agent.actor_opt, agent.actor, hp.actor_lr)

    # sync target
    target_critic = jax.tree_util.tree_map(lambda t, p: (1.0 - hp.tau) * t + hp.tau * p,
                                           agent.target_critic, critic)
    agent = AgentState(actor=actor, critic=critic, target_critic=target_critic, log_alpha=log_alpha,
                       actor_opt=actor_opt, critic_opt=critic_opt, alpha_opt=alpha_opt)
    metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "alpha_loss": alpha_loss,
               "alpha": jnp.exp(log_alpha), "entropy": entropy, "q_mean": jnp.mean(q)}
    return agent, metrics
