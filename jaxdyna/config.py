"""Run configuration: `Config` (static: shapes and loop counts) and `HParams` (traced scalars).

A YAML file is one flat mapping; each key is a field of `Config` or of `HParams`. Anything that
changes a shape or a loop count is static and lives in `Config` (changing it recompiles);
everything in `HParams` is a traced leaf, so a sweep over it is one compiled program.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from pathlib import Path
from typing import Any, Mapping

import jax.numpy as jnp
import yaml
from flax import struct

from jaxdyna.envs import BACKENDS, ENV_NAMES, check_env_name
from jaxdyna.networks import POLICY_STDS

ALGOS = ("sac", "dyna", "mbpo", "mve", "steve")
MODELS = ("none", "learned", "oracle")
ACTION_SOURCES = ("buffer", "policy", "random")
TERMINATIONS = ("known", "learned", "never")
STEVE_HEADS = ("min", "mean")
MATMUL_DTYPES = ("float32", "bfloat16")
MBPO_WEIGHT_DECAY = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)   # jannerm/mbpo mbpo/models/constructor.py


def default_weight_decay(hidden_layers: int) -> tuple[float, ...]:
    """MBPO's per-layer decays for a member with `hidden_layers` hidden layers: its hidden-layer
    coefficients in order (7.5e-5 beyond the fourth), then 1e-4 on the output layer."""
    hidden = MBPO_WEIGHT_DECAY[:-1] + (MBPO_WEIGHT_DECAY[-2],) * max(0, hidden_layers - 4)
    return hidden[:hidden_layers] + MBPO_WEIGHT_DECAY[-1:]


class ConfigError(ValueError):
    """Bad user input; the message is one line naming the field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Static settings: each one changes a shape or a loop count of the compiled program."""

    algo: str = "sac"
    """Algorithm: sac | dyna | mbpo | mve | steve (all are the same loop, configured)."""
    env: str = "inverted_pendulum"
    """Brax environment name."""
    backend: str = "generalized"
    """Brax physics backend: generalized | positional | spring | mjx."""
    episode_length: int = 1000
    """Time limit in env steps (truncation, bootstrapped through)."""
    num_envs: int = 1
    """Parallel envs per run; one collect step adds this many transitions."""
    total_steps: int = 20_000
    """Total real env steps, warm-up included."""
    warmup_steps: int = 1_000
    """Random-action env steps collected before learning starts (part of total_steps)."""
    eval_every: int = 1_000
    """Env steps between evaluations (also the granularity of metrics and progress)."""
    eval_episodes: int = 5
    """Deterministic evaluation episodes per evaluation, run on separate envs."""
    buffer_size: int = 1_000_000
    """Real replay buffer capacity (transitions)."""
    batch_size: int = 256
    """Agent minibatch size."""
    updates_per_step: int = 1
    """Agent gradient updates per collect step."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Actor MLP hidden sizes."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Critic MLP hidden sizes (per Q head)."""
    num_critics: int = 2
    """Number of Q heads (2 = twin Q with the min target)."""
    policy_std: str = "log_std"
    """Policy std head: log_std (tanh-squashed log-std in [-5, 2]) | softplus (Brax's SAC)."""
    # --- model ---------------------------------------------------------------------------
    model: str = "none"
    """Dynamics model: none | learned (probabilistic ensemble) | oracle (the true Brax step)."""
    ensemble_size: int = 7
    """Ensemble members."""
    num_elites: int = 5
    """Members with the lowest holdout loss that are used to imagine."""
    model_hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden sizes of each ensemble member (swish)."""
    model_train_freq: int = 250
    """Env steps between model refits (and imagination rounds)."""
    model_batch_size: int = 256
    """Minibatch size for model training."""
    model_max_train: int = 100_000
    """Most recent real transitions a refit trains on (the fixed shape of one model epoch)."""
    model_max_epochs: int = 20
    """Upper bound on epochs per refit (early stopping usually ends sooner)."""
    model_patience: int = 5
    """Stop a refit once more than this many epochs pass without a >1% holdout gain on any member."""
    model_weight_decay: tuple[float, ...] = MBPO_WEIGHT_DECAY
    """Per-layer L2 coefficients (loss 0.5 * c * ||W||^2), one per model layer, output included;
    one value applies to every layer. Default: MBPO's (`default_weight_decay`)."""
    model_holdout_ratio: float = 0.2
    """Fraction of the training window held out to score epochs and rank elites."""
    model_max_holdout: int = 5_000
    """Cap on the holdout size."""
    model_matmul: str = "float32"
    """Ensemble matmul inputs (fit and imagination): float32 | bfloat16 (products summed in float32;
    weights, Adam and everything else stay float32)."""
    termination: str = "known"
    """Termination in imagination: known (written from the Brax env) | learned | never."""
    rollout_batch_size: int = 100_000
    """Branched rollouts started per imagination round."""
    max_rollout_length: int = 1
    """Static maximum rollout length k; the traced schedule is masked up to it."""
    action_source: str = "policy"
    """Imagined actions: buffer (classic Dyna, first step only) | policy (MBPO) | random."""
    model_retain: int = 1
    """Model buffer keeps the rollouts of the last N refits (1 = flush on every refit)."""
    value_horizon: int = 0
    """MVE / STEVE: static maximum imagined horizon H for the TD target."""
    td_k: bool = False
    """MVE: also fit Q on targets for every step along the imagined path (the TD-k trick)."""
    steve_heads: str = "min"
    """STEVE: a horizon's point estimate over Q heads: min (clipped double Q, H = 0 is SAC) | mean."""

    # ------------------------------------------------------------------------------------
    @property
    def model_based(self) -> bool:
        return self.model != "none"

    @property
    def collect_steps(self) -> int:
        """Collect steps (each adds num_envs transitions) in the whole training phase."""
        return (self.total_steps - self.warmup_steps) // self.num_envs

    @property
    def chunk_steps(self) -> int:
        """Collect steps between model refits (or per evaluation when there is no model)."""
        every = self.model_train_freq if self.model_based else self.eval_every
        return every // self.num_envs

    @property
    def chunks_per_eval(self) -> int:
        return self.eval_every // (self.chunk_steps * self.num_envs)

    @property
    def num_evals(self) -> int:
        return (self.total_steps - self.warmup_steps) // self.eval_every


@struct.dataclass
class HParams:
    """Traced hyperparameters: every leaf is a scalar that vmap can batch over."""

    actor_lr: Any = 3e-4
    critic_lr: Any = 3e-4
    alpha_lr: Any = 3e-4
    gamma: Any = 0.99
    tau: Any = 5e-3
    init_alpha: Any = 1.0
    target_entropy: Any = math.nan          # NaN = auto: -action_size
    reward_scale: Any = 1.0
    real_ratio: Any = 0.05                  # share of each agent batch drawn from real data
    rollout_start_epoch: Any = 20.0         # MBPO schedule [start_epoch, end_epoch, min_len, max_len]
    rollout_end_epoch: Any = 100.0
    rollout_min_len: Any = 1.0
    rollout_max_len: Any = 1.0
    epoch_length: Any = 1000.0              # env steps per "epoch" of the rollout schedule
    model_lr: Any = 1e-3
    horizon: Any = 0.0                      # MVE/STEVE effective horizon (<= value_horizon)


HPARAM_DOCS = {
    "actor_lr": "actor Adam learning rate",
    "critic_lr": "critic Adam learning rate",
    "alpha_lr": "entropy-temperature Adam learning rate",
    "gamma": "discount",
    "tau": "Polyak rate of the target critic",
    "init_alpha": "initial entropy temperature",
    "target_entropy": "SAC entropy target ('auto' = -action_size)",
    "reward_scale": "multiplier on rewards in the TD target",
    "real_ratio": "share of each agent batch drawn from real data (rest: model buffer)",
    "rollout_start_epoch": "rollout-length schedule: epoch where growth starts",
    "rollout_end_epoch": "rollout-length schedule: epoch where growth ends",
    "rollout_min_len": "rollout-length schedule: length before start_epoch",
    "rollout_max_len": "rollout-length schedule: length after end_epoch (<= max_rollout_length)",
    "epoch_length": "env steps per schedule epoch",
    "model_lr": "model Adam learning rate",
    "horizon": "MVE/STEVE effective horizon (<= value_horizon)",
}

CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
HPARAM_FIELDS = {f.name: f for f in dataclasses.fields(HParams)}
ALL_KEYS = sorted(set(CONFIG_FIELDS) | set(HPARAM_FIELDS))

_CHOICES = {"algo": ALGOS, "backend": BACKENDS, "model": MODELS,
            "action_source": ACTION_SOURCES, "termination": TERMINATIONS, "policy_std": POLICY_STDS,
            "steve_heads": STEVE_HEADS, "model_matmul": MATMUL_DTYPES}


def _coerce(name: str, value: Any, kind: type) -> Any:
    """Convert a YAML / --set value to the field's type or raise a ConfigError naming the field."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
                if f.is_integer():
                    return int(f)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if kind is float:
        if name == "target_entropy" and (value is None or value == "auto"):
            return math.nan
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{name}: expected a finite number, got {value!r}")
        return out
    if kind is str:
        if not isinstance(value, str):
            allowed = _CHOICES.get(name, ENV_NAMES if name == "env" else ())
            raise ConfigError(f"{name}: expected one of {', '.join(allowed)}, got {value!r}")
        return value
    if kind == tuple[float, ...]:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}: expected a number or a non-empty list of numbers, got {value!r}")
        out = tuple(_coerce(name, v, float) for v in value)
        if any(v < 0 for v in out):
            raise ConfigError(f"{name}: expected numbers >= 0, got {value!r}")
        return out
    if kind == tuple[int, ...]:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value:
            raise ConfigError(f"{name}: expected a non-empty list of positive integers, got {value!r}")
        out = tuple(_coerce(name, v, int) for v in value)
        if any(v <= 0 for v in out):
            raise ConfigError(f"{name}: expected a non-empty list of positive integers, got {value!r}")
        return out
    raise TypeError(kind)  # pragma: no cover - a field type this function does not know


def _field_type(name: str) -> type:
    if name in CONFIG_FIELDS:
        return typing.get_type_hints(Config)[name]
    return float


def parse_set(items: list[str]) -> dict[str, Any]:
    """Parse `--set key=value` overrides (values parsed as YAML scalars / lists)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set: expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: no such file {str(path)!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must be a mapping of key: value, got {type(data).__name__}")
    return data


def resolve(values: Mapping[str, Any]) -> tuple[Config, HParams]:
    """Build and validate (Config, HParams) from a flat mapping of overrides."""
    cfg_kw, hp_kw = {}, {}
    for key, value in values.items():
        if key not in CONFIG_FIELDS and key not in HPARAM_FIELDS:
            close = difflib.get_close_matches(str(key), ALL_KEYS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown key {key!r}; {hint}allowed keys: {', '.join(ALL_KEYS)}")
        v = _coerce(key, value, _field_type(key))
        (cfg_kw if key in CONFIG_FIELDS else hp_kw)[key] = v
    cfg = dataclasses.replace(default_config(cfg_kw.get("algo", Config.algo)), **cfg_kw)
    if "model_weight_decay" not in cfg_kw:
        cfg = dataclasses.replace(cfg, model_weight_decay=default_weight_decay(len(cfg.model_hidden)))
    hp = HParams(**{**dataclasses.asdict(default_hparams(cfg.algo)), **hp_kw})
    validate(cfg, hp)
    return cfg, hp


def default_config(algo: str) -> Config:
    """The per-algorithm defaults that differ from plain SAC."""
    if algo not in ALGOS:
        raise ConfigError(f"algo: unknown {algo!r}; allowed: {', '.join(ALGOS)}")
    base = Config(algo=algo)
    if algo == "mbpo":
        return dataclasses.replace(base, model="learned", action_source="policy", max_rollout_length=1)
    if algo == "dyna":
        return dataclasses.replace(base, model="learned", action_source="buffer", max_rollout_length=1,
                                   model_retain=1)
    if algo in ("mve", "steve"):
        return dataclasses.replace(base, model="learned", value_horizon=3)
    return base


def default_hparams(algo: str) -> HParams:
    if algo == "dyna":
        return HParams(real_ratio=0.5)
    if algo in ("mve", "steve"):
        return HParams(horizon=3.0)
    return HParams()


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def validate(cfg: Config, hp: HParams) -> None:
    for name, choices in _CHOICES.items():
        _check(getattr(cfg, name) in choices,
               f"{name}: unknown {getattr(cfg, name)!r}; allowed: {', '.join(choices)}")
    try:
        check_env_name(cfg.env)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    positive = ("episode_length", "num_envs", "total_steps", "eval_every", "eval_episodes", "buffer_size",
                "batch_size", "updates_per_step", "num_critics", "ensemble_size", "num_elites",
                "model_train_freq", "model_batch_size", "model_max_train", "model_max_epochs",
                "model_patience", "model_max_holdout", "rollout_batch_size", "max_rollout_length",
                "model_retain")
    for name in positive:
        _check(getattr(cfg, name) > 0, f"{name}: must be a positive integer, got {getattr(cfg, name)}")
    _check(cfg.warmup_steps >= 0, f"warmup_steps: must be >= 0, got {cfg.warmup_steps}")
    _check(cfg.value_horizon >= 0, f"value_horizon: must be >= 0, got {cfg.value_horizon}")
    _check(cfg.warmup_steps < cfg.total_steps,
           f"warmup_steps: must be less than total_steps ({cfg.total_steps}), got {cfg.warmup_steps}")
    _check(cfg.warmup_steps % cfg.num_envs == 0,
           f"warmup_steps: must be a multiple of num_envs ({cfg.num_envs}), got {cfg.warmup_steps}")
    _check(cfg.warmup_steps >= cfg.num_envs or cfg.warmup_steps == 0, "warmup_steps: too small")
    _check(cfg.eval_every % cfg.num_envs == 0,
           f"eval_every: must be a multiple of num_envs ({cfg.num_envs}), got {cfg.eval_every}")
    _check(cfg.total_steps - cfg.warmup_steps >= cfg.eval_every,
           f"eval_every: must be at most total_steps - warmup_steps ({cfg.total_steps - cfg.warmup_steps}), "
           f"got {cfg.eval_every}")
    _check(cfg.batch_size <= cfg.buffer_size,
           f"batch_size: must be at most buffer_size ({cfg.buffer_size}), got {cfg.batch_size}")
    _check(cfg.warmup_steps >= 1, "warmup_steps: must be >= 1 so the first batch has data")
    if cfg.model_based:
        _check(cfg.algo != "sac", "model: sac takes model none; use algo dyna, mbpo, mve or steve")
        _check(cfg.num_elites <= cfg.ensemble_size,
               f"num_elites: must be at most ensemble_size ({cfg.ensemble_size}), got {cfg.num_elites}")
        _check(cfg.model_train_freq % cfg.num_envs == 0,
               f"model_train_freq: must be a multiple of num_envs ({cfg.num_envs}), got {cfg.model_train_freq}")
        _check(cfg.eval_every % cfg.model_train_freq == 0,
               f"eval_every: must be a multiple of model_train_freq ({cfg.model_train_freq}), got {cfg.eval_every}")
        _check(0.0 < cfg.model_holdout_ratio < 1.0,
               f"model_holdout_ratio: must be in (0, 1), got {cfg.model_holdout_ratio}")
        _check(cfg.model_batch_size <= cfg.model_max_train,
               f"model_batch_size: must be at most model_max_train ({cfg.model_max_train}), got {cfg.model_batch_size}")
        _check(cfg.rollout_batch_size * cfg.max_rollout_length * cfg.model_retain >= cfg.batch_size,
               "rollout_batch_size: model buffer (rollout_batch_size * max_rollout_length * model_retain) "
               f"must hold at least batch_size ({cfg.batch_size}) transitions")
    else:
        _check(cfg.algo == "sac", f"model: {cfg.algo} needs model learned or oracle, got none")
    if cfg.model == "oracle":
        from jaxdyna.envs import ORACLE_ENVS
        _check(cfg.env in ORACLE_ENVS, f"model: oracle is available for {', '.join(ORACLE_ENVS)}, not {cfg.env!r}")
        _check(cfg.backend == "generalized",
               f"backend: model: oracle is exact on the generalized backend only, got {cfg.backend!r}")
    if cfg.model == "learned" and cfg.termination == "known":
        from jaxdyna.termination import KNOWN, known_rule
        _check(known_rule(cfg.env) is not None, f"termination: no known termination function for {cfg.env!r} "
               f"(known: {', '.join(KNOWN)}); use learned or never")
    if cfg.model == "learned":
        layers = len(cfg.model_hidden) + 1
        _check(len(cfg.model_weight_decay) in (1, layers),
               f"model_weight_decay: needs one value or one per model layer ({layers} for model_hidden "
               f"{list(cfg.model_hidden)}), got {len(cfg.model_weight_decay)}")
    _check(0.0 < hp.gamma <= 1.0, f"gamma: must be in (0, 1], got {hp.gamma}")
    _check(0.0 < hp.tau <= 1.0, f"tau: must be in (0, 1], got {hp.tau}")
    _check(0.0 <= hp.real_ratio <= 1.0, f"real_ratio: must be in [0, 1], got {hp.real_ratio}")
    for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha", "model_lr", "epoch_length"):
        _check(getattr(hp, name) > 0, f"{name}: must be > 0, got {getattr(hp, name)}")
    _check(1.0 <= hp.rollout_min_len <= hp.rollout_max_len <= cfg.max_rollout_length,
           "rollout_max_len: need 1 <= rollout_min_len <= rollout_max_len <= max_rollout_length "
           f"({cfg.max_rollout_length}), got {hp.rollout_min_len}, {hp.rollout_max_len}")
    _check(hp.rollout_start_epoch <= hp.rollout_end_epoch,
           f"rollout_end_epoch: must be >= rollout_start_epoch ({hp.rollout_start_epoch}), got {hp.rollout_end_epoch}")
    _check(0.0 <= hp.horizon <= cfg.value_horizon,
           f"horizon: must be in [0, value_horizon={cfg.value_horizon}], got {hp.horizon}")


def to_dict(cfg: Config, hp: HParams) -> dict[str, Any]:
    """The flat, YAML-ready mapping of a resolved run (round-trips through `resolve`)."""
    out: dict[str, Any] = {}
    for k, v in dataclasses.asdict(cfg).items():
        out[k] = list(v) if isinstance(v, tuple) else v
    for k, v in dataclasses.asdict(hp).items():
        v = float(v)
        out[k] = "auto" if (k == "target_entropy" and math.isnan(v)) else v
    return out


def stack_hparams(hps: list[HParams]) -> HParams:
    """Stack a list of HParams into one with a leading sweep axis (for vmap)."""
    return HParams(**{f: jnp.asarray([float(getattr(h, f)) for h in hps], jnp.float32) for f in HPARAM_FIELDS})


def as_arrays(hp: HParams) -> HParams:
    return HParams(**{f: jnp.asarray(float(getattr(hp, f)), jnp.float32) for f in HPARAM_FIELDS})
