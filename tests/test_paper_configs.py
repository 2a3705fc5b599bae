"""Paper settings as data: every value of every shipped config, where it comes from, and where it departs.

`TABLE` below is transcribed from the papers' reference code and appendices. Each row is
`(where, key, value, source, departure)`:

* `where` — which shipped configs the row covers: space-separated `algo/env` globs over
  `configs/<algo>/<env>.yaml`; a glob prefixed with `!` excludes files.
* `value` — the raw YAML value (compared after `yaml.safe_load`; numbers with `math.isclose`).
* `source` — the reference file and line (or paper section / table) the value comes from.
* `departure` — `None` when the config holds the source's value; otherwise why jaxdyna departs.

Reading the departure column top to bottom lists every place jaxdyna differs from a paper.

Sources (line numbers at these revisions):

* MBPO — github.com/jannerm/mbpo at ac694ff9f1ebb789cc5b3f164d9d67f93ed8f129 (examples/config/<env>/0.py,
  examples/development/base.py, mbpo/models/{constructor,bnn}.py, mbpo/algorithms/mbpo.py,
  softlearning/); Janner et al. 2019, "When to Trust Your Model", App. C Table 1 for the budgets.
* SAC — the softlearning SAC vendored in the MBPO repo (the SAC of MBPO's comparisons);
  Haarnoja et al. 2018b, "Soft Actor-Critic Algorithms and Applications", App. D Table 1.
* STEVE — Buckman et al. 2018; github.com/tensorflow/models research/steve/config/ (algos/steve.json,
  algos/mve_tdk.json, core/basic.json, core/model.json, core/bayesian.json).
* MVE — Feinberg et al. 2018; github.com/vlad17/mve experiments/hc5.yaml; the STEVE code's MVE
  baseline (algos/mve_tdk.json).
* Dyna — Sutton 1990; Sutton & Barto 2nd ed. sec. 8.2 (tabular Dyna-Q). The deep-RL Dyna settings are
  jaxdyna's own choices and are marked as departures.
* STFL (the DMC configs, `configs/<algo>/dmc_*.yaml`) — Barkley & Fridovich-Keil 2025, "Stealing That Free
  Lunch: Exposing the Limits of Dyna-Style Reinforcement Learning" (ICML 2025); github.com/CLeARoboticsLab/STFL
  at f70ac19b3cd7691ed8cd7246bb00a7fbc0266271 (train_parallel.py's absl flags, configs/{mbpo,sac}_default.py,
  jaxrl/agents/mbpo/{mbpo_learner,transition_model}.py, jaxrl/agents/sac/sac_learner.py, env_model/no_term.py,
  README.md). Its MBPO and SAC share one script and its flags; its DMC tasks are dm_control's.
* MuJoCo Playground — mujoco_playground 0.2.0 (the `playground` extra, constraints.txt):
  _src/dm_control_suite/ (task registry, each task's default_config and xml) for the DMC envs;
  config/dm_control_suite_params.py:111-150 (brax_sac_config: lr 1e-3, batch 512, 8 updates per step over
  128 parallel envs, 5M-10M env steps) is Playground's own SAC for these tasks, a massively parallel regime.
  The DMC configs follow STFL's sample-efficiency regime (one env, 500k steps) instead, so that MBPO, SAC and
  the other algorithms are compared where the study compares them.

Conventions: dyna, mve and steve reuse MBPO's SAC and MBPO's model-fitting recipe, so the rows they
share with mbpo cite MBPO. mve and steve swap their papers' DDPG learner for SAC; that swap (and the
DDPG-side settings it replaces) is recorded once, on their `algo` rows. On the DeepMind Control suite
(`*/dmc_*`, MuJoCo Playground envs) the MBPO is the 2025 study's (STFL): the rows above exclude those
configs (`!*/dmc_*`) unless their value and reason hold there too, and the DMC rows at the end cite STFL.
dyna, mve and steve take STFL's SAC, model-fitting recipe and budget there; Dyna keeps its own choices
(the `dyna/*` rows), and mve and steve run at the DMC SAC baseline's 20 updates per env step. The DMC
configs leave `backend` out: Playground envs always run MJX (jaxdyna/envs.py make_env).
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Row(NamedTuple):
    where: str
    key: str
    value: Any
    source: str
    departure: str | None


MB = "jannerm/mbpo "                       # github.com/jannerm/mbpo @ ac694ff
ST = "tensorflow/models research/steve/"   # STEVE reference code
HOP = MB + "examples/config/hopper/0.py"
IP = MB + "examples/config/inverted_pendulum/0.py"
BASE = MB + "examples/development/base.py"
ALGO = MB + "mbpo/algorithms/mbpo.py"
BNN = MB + "mbpo/models/bnn.py"
CONSTRUCTOR = MB + "mbpo/models/constructor.py"
MBPO_TABLE = "Janner et al. 2019, App. C Table 1"
SAC_TABLE = "Haarnoja et al. 2018b, App. D Table 1"
SB = "Sutton & Barto 2nd ed. sec. 8.2 (Dyna-Q)"
STFL = "CLeARoboticsLab/STFL "             # github.com/CLeARoboticsLab/STFL @ f70ac19
TP = STFL + "train_parallel.py"           # absl flags and the training loop (SAC and MBPO alike)
MBPO_DEF = STFL + "configs/mbpo_default.py"
SAC_DEF = STFL + "configs/sac_default.py"
LEARNER = STFL + "jaxrl/agents/mbpo/mbpo_learner.py"
SAC_LEARNER = STFL + "jaxrl/agents/sac/sac_learner.py"
TRANSITION = STFL + "jaxrl/agents/mbpo/transition_model.py"
PG_SUITE = "mujoco_playground 0.2.0 _src/dm_control_suite/"

NOT_DMC = "!*/dmc_*"                       # the DeepMind Control configs have their own rows (STFL)
DMC = "*/dmc_*"
DMC_MB = "mbpo/dmc_* dyna/dmc_* mve/dmc_* steve/dmc_*"
ALL = f"*/* {NOT_DMC}"                     # every Brax (MuJoCo task) config
LOCOMOTION = "*/hopper */walker2d */halfcheetah */ant */humanoid"
MODEL_BASED = f"mbpo/* dyna/* mve/* steve/* {NOT_DMC}"
PENDULUM_MB = "mbpo/inverted_pendulum dyna/inverted_pendulum mve/inverted_pendulum steve/inverted_pendulum"
MBPO_WEIGHT_DECAY = [2.5e-5, 5.0e-5, 7.5e-5, 7.5e-5, 1.0e-4]
DMC_ENV = ("MuJoCo Playground's MJX port of the dm_control task instead of dm_control itself (STFL: "
           "jaxrl/utils.py:53-56): physics, solver and some timesteps differ (Playground reacher.py:38: sim_dt "
           "0.005, 0.02 in DMC), so returns are not comparable number for number; the five DMC tasks are "
           "jaxdyna's choice (two that fit a CPU, three locomotion tasks)")

R = Row
TABLE: list[Row] = [
    # --- SAC, shared by the 32 Brax configs -------------------------------------------------------
    R(ALL, "backend", "generalized", f"{HOP}:3 ('universe': 'gym', MuJoCo v2 tasks)",
      "Brax physics (generalized backend) instead of gym MuJoCo: observations, rewards and termination "
      "differ, so returns are not comparable number for number with the papers'"),
    R(f"* !sac/reacher {NOT_DMC}", "episode_length", 1000, f"{BASE}:38 (DEFAULT_MAX_PATH_LENGTH)", None),
    R("sac/reacher", "episode_length", 1000, f"{BASE}:38 default; reacher is not in MBPO",
      "gym's Reacher-v2 ends episodes after 50 steps; jaxdyna uses one 1000-step time limit for every env"),
    R(ALL, "buffer_size", 1_000_000, f"{BASE}:172 (SimpleReplayPool max_size 1e6); {SAC_TABLE}", None),
    R(ALL, "batch_size", 256, f"{BASE}:189; {SAC_TABLE}", None),
    R(ALL, "actor_hidden", [256, 256], f"{BASE}:7,15 (GaussianPolicy hidden_layer_sizes (M, M), M = 256)", None),
    R(ALL, "critic_hidden", [256, 256], f"{BASE}:161-163 (double_feedforward_Q_function (M, M))", None),
    R(ALL, "actor_lr", 3e-4, f"{BASE}:49 ('lr'; policy lr at {ALGO}:132)", None),
    R(ALL, "critic_lr", 3e-4, f"{BASE}:49 ('lr'; Q lr at {ALGO}:133)", None),
    R(ALL, "alpha_lr", 3e-4, f"{ALGO}:587-588 (alpha's Adam uses the policy lr)", None),
    R(ALL, "gamma", 0.99, f"{HOP}:18 ('discount'); {SAC_TABLE}", None),
    R(ALL, "tau", 5e-3, f"{HOP}:19; {BASE}:51", None),
    R(ALL, "eval_episodes", 5, f"{HOP}:15 ('eval_n_episodes': 1)",
      "5 deterministic episodes per evaluation instead of 1, for a lower-variance point per evaluation"),

    # --- per environment: name, entropy target, budget, warm-up, evaluation ---------------------------
    R("*/hopper", "env", "hopper", f"{HOP}:4 ('Hopper')", None),
    R("*/walker2d", "env", "walker2d", f"{MB}examples/config/walker2d/0.py:4 ('Walker2d')", None),
    R("*/halfcheetah", "env", "halfcheetah", f"{MB}examples/config/halfcheetah/0.py:4 ('HalfCheetah')", None),
    R("*/ant", "env", "ant", f"{MB}examples/config/ant/0.py:4 ('AntTruncatedObs', no contact forces)", None),
    R("*/humanoid", "env", "humanoid", f"{MB}examples/config/humanoid/0.py:4 ('HumanoidTruncatedObs')", None),
    R("*/inverted_pendulum", "env", "inverted_pendulum", f"{IP}:4 ('InvertedPendulum')", None),
    R("sac/inverted_double_pendulum", "env", "inverted_double_pendulum",
      f"{MB}examples/config/inverted_double_pendulum/0.py:4 (repo only; not in the paper's Fig. 2)", None),
    R("sac/reacher", "env", "reacher",
      "jaxdyna's choice: not among the tasks of Janner et al. 2019 Fig. 2 (nor in the STEVE or MVE papers)",
      "extra model-free baseline env with no MBPO reference run"),

    R("*/hopper", "target_entropy", -1, f"{HOP}:29", None),
    R("*/walker2d", "target_entropy", -3, f"{MB}examples/config/walker2d/0.py:29", None),
    R("*/halfcheetah", "target_entropy", -3, f"{MB}examples/config/halfcheetah/0.py:29", None),
    R("*/ant", "target_entropy", -4, f"{MB}examples/config/ant/0.py:29", None),
    R("*/humanoid", "target_entropy", -2, f"{MB}examples/config/humanoid/0.py:29", None),
    R("*/inverted_pendulum", "target_entropy", -0.05, f"{IP}:30", None),
    R("sac/inverted_double_pendulum", "target_entropy", -0.5,
      f"{MB}examples/config/inverted_double_pendulum/0.py:30", None),
    R("sac/reacher", "target_entropy", "auto", f"{ALGO}:136-139 ('auto' = -action size); {SAC_TABLE}", None),

    R("*/hopper", "total_steps", 125_000, f"{MBPO_TABLE} (Hopper: 125 epochs x 1000 steps)",
      "total_steps includes the 5000 warm-up steps, which MBPO runs before its first epoch; dyna, mve and "
      "steve use MBPO's budget (the STEVE and MVE papers train for millions of frames)"),
    R("*/walker2d", "total_steps", 300_000, f"{MBPO_TABLE} (Walker2d: 300 epochs x 1000 steps)",
      "warm-up included (see hopper); dyna/mve/steve use MBPO's budget"),
    R("*/halfcheetah", "total_steps", 400_000, f"{MBPO_TABLE} (HalfCheetah: 400 epochs x 1000 steps)",
      "warm-up included (see hopper); dyna/mve/steve use MBPO's budget"),
    R("*/ant", "total_steps", 300_000, f"{MBPO_TABLE} (Ant: 300 epochs x 1000 steps)",
      "warm-up included (see hopper); dyna/mve/steve use MBPO's budget"),
    R("*/humanoid", "total_steps", 300_000, f"{MBPO_TABLE} (Humanoid: 300 epochs x 1000 steps)",
      "warm-up included (see hopper); dyna/mve/steve use MBPO's budget"),
    R(PENDULUM_MB, "total_steps", 5_000, f"{IP}:11 ('n_epochs': 80 of 250 steps = 20k)",
      "budget shortened for a CPU: 5000 env steps (20 epochs of 250), so the model-based pendulum "
      "comparison (configs/sweeps/inverted_pendulum.yaml) runs on a 2-core CPU"),
    R("sac/inverted_pendulum", "total_steps", 20_000, f"{IP}:11 ('n_epochs': 80 of 250 steps = 20k)",
      "warm-up included (MBPO's 500 exploration steps come before its 80 epochs)"),
    R("sac/inverted_double_pendulum", "total_steps", 50_000,
      f"{MB}examples/config/inverted_double_pendulum/0.py:11 (80 epochs of 250 = 20k)",
      "jaxdyna's choice: 50k steps for the model-free baseline (no paper run to match)"),
    R("sac/reacher", "total_steps", 100_000, "jaxdyna's choice (no run in Janner et al. 2019 Fig. 2)",
      "budget chosen for the extra model-free baseline env"),

    R(f"{LOCOMOTION} sac/reacher", "warmup_steps", 5000,
      f"{BASE}:54 ('n_initial_exploration_steps': 5000)", None),
    R("sac/inverted_double_pendulum", "warmup_steps", 5000,
      f"{MB}examples/config/inverted_double_pendulum/0.py:34 ('n_initial_exploration_steps': 500)",
      "jaxdyna's choice: the 5000-step locomotion default instead of the repo's 500 for this env"),
    R("*/inverted_pendulum", "warmup_steps", 1000, f"{IP}:34 ('n_initial_exploration_steps': 500)",
      "1000 random steps (4 epochs of 250): the setting the pendulum benchmarks were run with; "
      "kept so results/ stay reproducible"),

    R(f"{LOCOMOTION} sac/reacher", "eval_every", 5000, f"{ALGO}:251 (MBPO evaluates after every epoch); {HOP}:11",
      "evaluate every 5 epochs (5000 env steps) instead of every epoch: less evaluation time on long runs"),
    R(PENDULUM_MB, "eval_every", 250, f"{ALGO}:251 (evaluation after every epoch); {IP}:12 (epoch_length 250)",
      None),
    R("sac/inverted_pendulum sac/inverted_double_pendulum", "eval_every", 1000,
      f"{ALGO}:251 (every epoch); {IP}:12 (epoch_length 250)",
      "every 4 epochs of 250 steps: jaxdyna's choice for the 20k/50k-step SAC runs"),

    # --- SAC -------------------------------------------------------------------------------------------
    R(f"sac/* {NOT_DMC}", "algo", "sac",
      f"{MB}softlearning/algorithms/sac.py:36-44 (the SAC of MBPO's comparisons); {SAC_TABLE}", None),
    R(f"sac/* {NOT_DMC}", "updates_per_step", 1,
      f"{MB}softlearning/algorithms/rl_algorithm.py:28 (n_train_repeat=1); {SAC_TABLE}", None),

    # --- the learned model (shared by mbpo, dyna, mve, steve) ----------------------------------------
    R(MODEL_BASED, "model", "learned", f"{CONSTRUCTOR}:7-18 (probabilistic ensemble, BNN)", None),
    R(f"mbpo/* dyna/* {NOT_DMC}", "ensemble_size", 7, f"{HOP}:26 ('num_networks': 7)", None),
    R("mve/*", "ensemble_size", 7, f"{ST}config/algos/mve_tdk.json:2-5 (inherits no core/bayesian.json: one model)",
      "MBPO's 7-member ensemble instead of MVE's single dynamics model (rollouts use a random elite per sample)"),
    R("steve/*", "ensemble_size", 7, f"{ST}config/core/bayesian.json:14 (transition ensemble_size 4)",
      "MBPO's 7-member ensemble instead of STEVE's 4 transition models (and 4 reward models, "
      "bayesian.json:19; jaxdyna's members predict reward and next state together)"),
    R(f"mbpo/* dyna/* {NOT_DMC}", "num_elites", 5, f"{HOP}:27", None),
    R("mve/* steve/*", "num_elites", 5, f"{HOP}:27 (MBPO); MVE and STEVE have no elites",
      "MBPO's elite selection (5 of 7 by holdout loss) kept for mve/steve"),
    R(f"mbpo/* dyna/* !*/humanoid {NOT_DMC}", "model_hidden", [200, 200, 200, 200],
      f"{CONSTRUCTOR}:12-15 (4 swish layers of hidden_dim); {ALGO}:70 (hidden_dim=200)", None),
    R("mbpo/humanoid dyna/humanoid", "model_hidden", [400, 400, 400, 400],
      f"{MB}examples/config/humanoid/0.py:32 ('hidden_dim': 400); {CONSTRUCTOR}:12-15", None),
    R("mve/* steve/* !*/humanoid", "model_hidden", [200, 200, 200, 200],
      f"{ST}config/core/model.json:4 (transition_hidden_dim 512)",
      "MBPO's member MLP (4x200 swish, constructor.py:12-15) instead of STEVE's transition network"),
    R("mve/humanoid steve/humanoid", "model_hidden", [400, 400, 400, 400],
      f"{ST}config/core/model.json:4 (transition_hidden_dim 512)",
      "MBPO's humanoid member MLP (4x400, examples/config/humanoid/0.py:32) instead of STEVE's"),
    R(f"mbpo/* !mbpo/humanoid {NOT_DMC}", "model_train_freq", 250, f"{HOP}:22 (inverted_pendulum/0.py:23)", None),
    R("mbpo/humanoid", "model_train_freq", 1000, f"{MB}examples/config/humanoid/0.py:22", None),
    R(f"dyna/* {NOT_DMC}", "model_train_freq", 250, f"{HOP}:22 (MBPO's cadence); {SB}",
      "jaxdyna's choice: refit every 250 env steps on every env (humanoid too, where MBPO refits every "
      "1000) so Dyna's flushed one-refit model buffer stays fresh"),
    R(f"mve/* steve/* {NOT_DMC}", "model_train_freq", 250,
      f"{ST}config/core/model.json:6,13 (batch 512, 4 model updates per frame)",
      "MBPO's model recipe (refit every 250 env steps with early stopping, batch 256, lr 1e-3, "
      "per-layer decay; the rows below) replaces the reference's continuous model training"),
    R(MODEL_BASED, "model_batch_size", 256, f"{ALGO}:224 (train_model batch_size=256)", None),
    R(MODEL_BASED, "model_holdout_ratio", 0.2, f"{ALGO}:224 (holdout_ratio=0.2)", None),
    R(MODEL_BASED, "model_max_holdout", 5000, f"{BNN}:304,326 (max_logging=5000 caps the holdout)", None),
    R(MODEL_BASED, "model_patience", 5,
      f"{BNN}:303 (max_epochs_since_update=5), :249 (>1% gain), :261 (stop when more than 5)", None),
    R(MODEL_BASED, "model_lr", 1e-3, f"{CONSTRUCTOR}:17 (AdamOptimizer learning_rate 0.001)", None),
    R(MODEL_BASED, "model_weight_decay", MBPO_WEIGHT_DECAY,
      f"{CONSTRUCTOR}:12-16 (per-layer weight_decay, output layer last)", None),
    R(MODEL_BASED, "termination", "known", f"{MB}mbpo/static/hopper.py:6 (hand-written termination_fn per env)",
      "the Brax env's own termination rule (jaxdyna/termination.py) instead of MBPO's gym rules"),
    R(MODEL_BASED, "model_max_train", 100_000, f"{ALGO}:376 (trains on pool.return_all_samples())",
      "a refit trains on the newest 100k real transitions, not the whole buffer: one model epoch has a "
      "fixed shape (and cost) inside the compiled program"),
    R(MODEL_BASED, "model_max_epochs", 50,
      f"{ALGO}:224 (max_epochs=None); {HOP}:30 ('max_model_t': None)",
      "an epoch cap per refit where MBPO has only early stopping (plus an optional time limit, unset): "
      "a compiled while-loop needs a bound"),

    # --- MBPO ------------------------------------------------------------------------------------------
    R(f"mbpo/* {NOT_DMC}", "algo", "mbpo", "Janner et al. 2019, Algorithm 2", None),
    R(f"mbpo/* !mbpo/inverted_pendulum {NOT_DMC}", "epoch_length", 1000, f"{HOP}:11", None),
    R("mbpo/inverted_pendulum", "epoch_length", 250, f"{IP}:12", None),
    R("mbpo/hopper mbpo/walker2d mbpo/ant mbpo/humanoid", "updates_per_step", 20, f"{HOP}:13 ('n_train_repeat')", None),
    R("mbpo/halfcheetah", "updates_per_step", 40, f"{MB}examples/config/halfcheetah/0.py:13", None),
    R("mbpo/inverted_pendulum", "updates_per_step", 10, f"{IP}:14", None),
    R(f"mbpo/* {NOT_DMC}", "real_ratio", 0.05, f"{HOP}:28 (inverted_pendulum/0.py:29)", None),
    R(f"mbpo/* {NOT_DMC}", "rollout_batch_size", 100_000, f"{HOP}:24 (inverted_pendulum/0.py:25)", None),
    R(f"mbpo/* {NOT_DMC}", "action_source", "policy", f"{ALGO}:389 (rollout actions from the current policy)", None),
    R(f"mbpo/* !mbpo/humanoid !mbpo/inverted_pendulum {NOT_DMC}", "model_retain", 4,
      f"{HOP}:23 (model_retain_epochs 1 x 1000 steps / 250 per refit); {ALGO}:355-357", None),
    R("mbpo/humanoid", "model_retain", 5,
      f"{MB}examples/config/humanoid/0.py:23 (model_retain_epochs 5 x 1000 steps / 1000 per refit)", None),
    R("mbpo/inverted_pendulum", "model_retain", 1, f"{IP}:24 (model_retain_epochs 1 x 250 steps / 250 per refit)",
      None),
    # rollout schedule [start_epoch, end_epoch, min_len, max_len], examples/config/<env>/0.py:31
    R(f"mbpo/* !mbpo/inverted_pendulum {NOT_DMC}", "rollout_start_epoch", 20, f"{HOP}:31 (rollout_schedule[0])",
      None),
    R("mbpo/inverted_pendulum", "rollout_start_epoch", 1, f"{IP}:32", None),
    R("mbpo/hopper mbpo/walker2d mbpo/halfcheetah", "rollout_end_epoch", 150, f"{HOP}:31 (rollout_schedule[1])",
      None),
    R("mbpo/ant", "rollout_end_epoch", 100, f"{MB}examples/config/ant/0.py:31", None),
    R("mbpo/humanoid", "rollout_end_epoch", 300, f"{MB}examples/config/humanoid/0.py:31", None),
    R("mbpo/inverted_pendulum", "rollout_end_epoch", 15, f"{IP}:32", None),
    R(f"mbpo/* {NOT_DMC}", "rollout_min_len", 1, f"{HOP}:31 (rollout_schedule[2]; inverted_pendulum/0.py:32)", None),
    R("mbpo/hopper", "rollout_max_len", 15, f"{HOP}:31 (rollout_schedule[3])", None),
    R("mbpo/ant mbpo/humanoid", "rollout_max_len", 25, f"{MB}examples/config/ant/0.py:31, humanoid/0.py:31", None),
    R("mbpo/walker2d mbpo/halfcheetah mbpo/inverted_pendulum", "rollout_max_len", 1,
      f"{MB}examples/config/walker2d/0.py:31, halfcheetah/0.py:31, inverted_pendulum/0.py:32", None),
    R("mbpo/hopper", "max_rollout_length", 15, f"{HOP}:31 (static cap = the schedule's max_len)", None),
    R("mbpo/ant mbpo/humanoid", "max_rollout_length", 25, f"{MB}examples/config/ant/0.py:31, humanoid/0.py:31",
      None),
    R("mbpo/walker2d mbpo/halfcheetah mbpo/inverted_pendulum", "max_rollout_length", 1,
      f"{MB}examples/config/walker2d/0.py:31, halfcheetah/0.py:31, inverted_pendulum/0.py:32", None),

    # --- Dyna (deep-RL Dyna: mostly jaxdyna's own choices) ---------------------------------------------
    R("dyna/*", "algo", "dyna", f"Sutton 1990; {SB}",
      "deep-RL Dyna: SAC and MBPO's model ensemble in place of the book's tabular Q and table model"),
    R("dyna/*", "action_source", "buffer", f"{SB}: plan from previously observed states with actions taken in them",
      None),
    R("dyna/*", "max_rollout_length", 1, f"{SB}: one simulated step per planning update", None),
    R("dyna/*", "rollout_min_len", 1, f"{SB}: one simulated step per planning update", None),
    R("dyna/*", "rollout_max_len", 1, f"{SB}: one simulated step per planning update", None),
    R("dyna/*", "updates_per_step", 10, f"{SB}: n planning updates per real step (Fig. 8.2: n = 0, 5, 50)",
      "jaxdyna's choice: 10 SAC updates per real step on mixed batches (see real_ratio) instead of one "
      "real update followed by n planning updates"),
    R("dyna/*", "real_ratio", 0.1, f"{SB}: one real update per n planning updates",
      "jaxdyna's choice: 10% real data per batch, about one real update's worth per real step"),
    R("dyna/*", "rollout_batch_size", 50_000, f"{SB}: planning samples the model at every step",
      "jaxdyna's choice: 50k imagined one-step transitions per refit (200 per env step), the pool the "
      "planning updates sample from"),
    R("dyna/*", "model_retain", 1, f"{SB}: the model is the latest one",
      "jaxdyna's choice: flush the imagined transitions on every refit so planning uses the newest model only"),
    R(f"dyna/* !dyna/inverted_pendulum {NOT_DMC}", "epoch_length", 1000, f"{HOP}:11 (MBPO's epoch)",
      "jaxdyna's choice: MBPO's epoch length; unused, Dyna's rollout length is constant 1"),
    R("dyna/inverted_pendulum", "epoch_length", 250, f"{IP}:12 (MBPO's epoch)",
      "jaxdyna's choice: MBPO's epoch length; unused, Dyna's rollout length is constant 1"),

    # --- MVE -------------------------------------------------------------------------------------------
    R(f"mve/* {NOT_DMC}", "algo", "mve",
      f"Feinberg et al. 2018, sec. 3; {ST}config/core/basic.json:20 ('algo': 'ddpg')",
      "SAC learner (as Palenicek et al. 2023) with MBPO's SAC settings instead of DDPG (reference: 128-wide "
      "nets, batch 512, 10000 random frames, basic.json:21,23,11; vlad17/mve experiments/hc5.yaml:17-22)"),
    R("mve/*", "value_horizon", 3, f"{ST}config/algos/mve_tdk.json:9 (rollout_len 3; Feinberg's own HalfCheetah "
      "run uses 5, vlad17/mve experiments/hc5.yaml:25)", None),
    R("mve/*", "horizon", 3, f"{ST}config/algos/mve_tdk.json:9", None),
    R("mve/*", "td_k", True, f"{ST}config/algos/mve_tdk.json:10 (tdk_trick); Feinberg et al. 2018, sec. 3.1", None),
    R(f"mve/* {NOT_DMC}", "updates_per_step", 1,
      f"{ST}config/core/basic.json:29 (frames_per_update 0.25 = 4 updates per frame); vlad17/mve "
      "experiments/hc5.yaml:12 (learner_batches_per_timestep 4)",
      "1 SAC update per env step, as the SAC baseline, so the comparison isolates the value target; each "
      "update already runs H model steps"),

    # --- STEVE -----------------------------------------------------------------------------------------
    R(f"steve/* {NOT_DMC}", "algo", "steve",
      f"Buckman et al. 2018, sec. 3; {ST}config/core/basic.json:20 ('algo': 'ddpg')",
      "SAC learner with MBPO's SAC settings instead of DDPG (reference: 128-wide nets, batch 512, 10000 "
      "random frames, basic.json:21,23,11)"),
    R("steve/*", "value_horizon", 3, f"{ST}config/algos/steve.json:10 (rollout_len 3)", None),
    R("steve/*", "horizon", 3, f"{ST}config/algos/steve.json:10", None),
    R("steve/*", "num_critics", 2, f"{ST}config/core/bayesian.json:5 (Q ensemble_size 4)",
      "2 Q heads (SAC's twin Q) instead of STEVE's 4: candidate targets come from 7 members x 2 heads"),
    R(f"steve/* {NOT_DMC}", "updates_per_step", 1,
      f"{ST}config/core/basic.json:29 (frames_per_update 0.25 = 4 updates per frame)",
      "1 SAC update per env step, as the SAC baseline, so the comparison isolates the value target; each "
      "update already runs H model steps per member"),

    # --- DeepMind Control suite (MuJoCo Playground): the 2025 study's settings (STFL) ---------------
    # shared by the 25 DMC configs: SAC, budget, evaluation (one set of flags for every STFL run)
    R(DMC, "episode_length", 1000,
      f"{TP}:82 (evaluation episodes of 1000 steps); {PG_SUITE}cheetah.py:38 (episode_length 1000; "
      "cartpole.py:49, reacher.py:39, walker.py:42, hopper.py:41)", None),
    R(DMC, "total_steps", 500_000,
      f"{STFL}README.md:48 (--max_steps 500000; the flag's default is 300000, {TP}:34); {TP}:184-188 (the "
      "count includes the random warm-up steps, as jaxdyna's)", None),
    R(DMC, "warmup_steps", 10_000, f"{TP}:36-37 (start_training 1e4), :187-188 (random actions before it)", None),
    R(DMC, "eval_every", 5000, f"{TP}:31 (eval_interval), :80-82",
      "no evaluations during the random warm-up: jaxdyna's first is at 15000 env steps, where STFL also "
      "evaluates at steps 0, 5000 and 10000; from 15000 on the evaluation steps coincide"),
    R(DMC, "eval_episodes", 10, f"{TP}:28-29; {STFL}jaxrl/evaluation.py:17-21 (deterministic actions)", None),
    R(DMC, "buffer_size", 1_000_000, f"{TP}:35, :168-170 (replay_buffer_size 1e6)", None),
    R(DMC, "batch_size", 256, f"{TP}:32, :222-225", None),
    R(DMC, "actor_hidden", [256, 256], f"{MBPO_DEF}:13, {SAC_DEF}:13 (hidden_dims); {LEARNER}:302", None),
    R(DMC, "critic_hidden", [256, 256], f"{MBPO_DEF}:13, {SAC_DEF}:13 (hidden_dims); {LEARNER}:307 (DoubleCritic)",
      None),
    R(DMC, "actor_lr", 3e-4, f"{MBPO_DEF}:9, {SAC_DEF}:9", None),
    R(DMC, "critic_lr", 3e-4, f"{MBPO_DEF}:10, {SAC_DEF}:10", None),
    R(DMC, "alpha_lr", 3e-4, f"{MBPO_DEF}:11, {SAC_DEF}:11 (temp_lr)", None),
    R(DMC, "gamma", 0.99, f"{MBPO_DEF}:15, {SAC_DEF}:15 (discount)", None),
    R(DMC, "tau", 5e-3, f"{MBPO_DEF}:17, {SAC_DEF}:17", None),

    R("*/dmc_cartpole_swingup", "env", "playground/CartpoleSwingup",
      f"{PG_SUITE}__init__.py:45; dm_control's cartpole-swingup in STFL ({STFL}jaxrl/utils.py:53-56)", DMC_ENV),
    R("*/dmc_reacher_easy", "env", "playground/ReacherEasy",
      f"{PG_SUITE}__init__.py:65; dm_control's reacher-easy in STFL ({STFL}jaxrl/utils.py:53-56)", DMC_ENV),
    R("*/dmc_cheetah_run", "env", "playground/CheetahRun",
      f"{PG_SUITE}__init__.py:49; dm_control's cheetah-run in STFL ({STFL}README.md example, "
      "jaxrl/utils.py:53-56)", DMC_ENV),
    R("*/dmc_walker_walk", "env", "playground/WalkerWalk",
      f"{PG_SUITE}__init__.py:70; dm_control's walker-walk in STFL ({STFL}jaxrl/utils.py:53-56)", DMC_ENV),
    R("*/dmc_hopper_hop", "env", "playground/HopperHop",
      f"{PG_SUITE}__init__.py:58; dm_control's hopper-hop in STFL ({STFL}jaxrl/utils.py:53-56)", DMC_ENV),

    # target entropy -action_size / 2 when none is given (configs/mbpo_default.py:20 leaves it None)
    R("*/dmc_cartpole_swingup", "target_entropy", -0.5,
      f"{LEARNER}:274-275, {SAC_LEARNER}:86-87 (-action_dim / 2); 1 actuator, {PG_SUITE}xmls/cartpole.xml:34-36",
      None),
    R("*/dmc_reacher_easy", "target_entropy", -1,
      f"{LEARNER}:274-275, {SAC_LEARNER}:86-87 (-action_dim / 2); 2 actuators, {PG_SUITE}xmls/reacher.xml:45-48",
      None),
    R("*/dmc_cheetah_run", "target_entropy", -3,
      f"{LEARNER}:274-275, {SAC_LEARNER}:86-87 (-action_dim / 2); 6 actuators, {PG_SUITE}xmls/cheetah.xml:72-79",
      None),
    R("*/dmc_walker_walk", "target_entropy", -3,
      f"{LEARNER}:274-275, {SAC_LEARNER}:86-87 (-action_dim / 2); 6 actuators, {PG_SUITE}xmls/walker.xml:69-76",
      None),
    R("*/dmc_hopper_hop", "target_entropy", -2,
      f"{LEARNER}:274-275, {SAC_LEARNER}:86-87 (-action_dim / 2); 4 actuators, {PG_SUITE}xmls/hopper.xml:67-72",
      None),

    # SAC: the same script with --mbpo false (no model, real data only, the same update rate)
    R("sac/dmc_*", "algo", "sac",
      f"{SAC_DEF}:7 ({SAC_LEARNER}:66-114); {TP}:130-133 (--mbpo false: synthetic_ratio 0), :206,217 (no model)",
      None),
    R("sac/dmc_*", "updates_per_step", 20, f"{TP}:40 (updates_per_step 20: one flag for SAC and MBPO), :224,232",
      None),

    # the model and its fit (mbpo; dyna, mve and steve reuse it)
    R(DMC_MB, "model", "learned",
      f"{LEARNER}:320-328 (EnsembleModel); {TRANSITION}:36-81 (Gaussian over next_obs - obs and reward)",
      "jaxdyna's fit (MBPO's): each member trains on its own bootstrap resample, the log-variance bounds are "
      "learned and each member's best-holdout snapshot is kept; STFL gives every member the same batches "
      "(mbpo_learner.py:31-48 returns the un-shuffled tiling), fixes the bounds at 0.5 / -10 "
      "(transition_model.py:54-55, 71-72) and keeps the final weights"),
    R("mbpo/dmc_* dyna/dmc_*", "ensemble_size", 7, f"{LEARNER}:249", None),
    R("mbpo/dmc_* dyna/dmc_*", "num_elites", 5, f"{TP}:54; {LEARNER}:450 (lowest holdout MSE)", None),
    R("mbpo/dmc_* dyna/dmc_*", "model_hidden", [200, 200, 200, 200],
      f"{TRANSITION}:57-69 (4 swish layers ed1-ed4, output layer ed5); {TP}:53 (ensemble_hidden 200)", None),
    R("mbpo/dmc_* dyna/dmc_*", "model_train_freq", 250, f"{TP}:49 (ensemble_interval), :206", None),
    R("mve/dmc_* steve/dmc_*", "model_train_freq", 250,
      f"{ST}config/core/model.json:6,13 (batch 512, 4 model updates per frame)",
      "the DMC MBPO's model recipe (STFL: refit every 250 env steps, train_parallel.py:49; the rows below) "
      "replaces the reference's continuous model training"),
    R(DMC_MB, "model_batch_size", 256, f"{LEARNER}:423 (FLAGS.batch_size rows per step; {TP}:32)", None),
    R(DMC_MB, "model_holdout_ratio", 0.2, f"{LEARNER}:414,420", None),
    R(DMC_MB, "model_max_holdout", 20_000,
      f"{LEARNER}:416,424 (elites scored on 50000 draws, with replacement, from the 20% holdout)",
      "at most 20000 holdout rows: all of the 20% of the newest-100k training window (model_max_train); "
      "STFL holds out 20% of the whole buffer and scores a 50000-row sample of it"),
    R(DMC_MB, "model_max_epochs", 16,
      f"{TP}:209-215 (25 calls of train_mbpo(num_epochs=200) = 5000 Adam steps per refit); {LEARNER}:423,448",
      "jaxdyna counts passes over the training rows, STFL Adam steps: 16 passes of ceil(80000 / 256) = 313 "
      "steps = 5008 steps once the 100k window is full (from 100k env steps on); before that, 16 passes over "
      "fewer rows (512 steps at the first refit, on 10k rows, where STFL takes 5000)"),
    R(DMC_MB, "model_patience", 16,
      f"{LEARNER}:448-450 (no early stopping: a fixed step count, then elites by the final holdout MSE)",
      "patience = model_max_epochs, so a refit never stops early, as in STFL; the snapshot that jaxdyna keeps "
      "is recorded on the model row"),
    R(DMC_MB, "model_lr", 3e-4, f"{TP}:52 (ensemble_lr); {LEARNER}:328", None),
    R(DMC_MB, "model_weight_decay", MBPO_WEIGHT_DECAY, f"{TRANSITION}:142-152 (per layer, output layer last)", None),
    R(DMC_MB, "termination", "never",
      f"{TP}:62-66 (an env without a termination file gets 'no_term'); {STFL}env_model/no_term.py:6-9", None),
    R(DMC_MB, "model_max_train", 100_000, f"{LEARNER}:418-426 (trains on the whole buffer less the holdout)",
      "a refit trains on the newest 100k real transitions, not the whole buffer: one model epoch has a fixed "
      "shape inside the compiled program"),

    # MBPO
    R("mbpo/dmc_*", "algo", "mbpo", f"{TP}:48 (--mbpo, default true); {MBPO_DEF}:7; Janner et al. 2019, Algorithm 2",
      None),
    R("mbpo/dmc_*", "updates_per_step", 20, f"{TP}:40, :224,232", None),
    R("mbpo/dmc_*", "real_ratio", 0.05, f"{TP}:50,131 (synthetic_ratio 0.95), :222-223",
      "12 real rows of 256 (floor(0.05 x 256), as in MBPO) where STFL draws 13 (256 - int(0.95 x 256))"),
    R("mbpo/dmc_*", "rollout_batch_size", 100_000,
      f"{TP}:51 (model_rollouts_per_step 400), :217-218 (every env step), x 250 env steps per refit (:49)",
      "a refit interval's 100k one-step rollouts are generated at once after the refit, with the policy of "
      "that moment; STFL generates 400 every env step with the current policy"),
    R("mbpo/dmc_*", "action_source", "policy", f"{LEARNER}:76-80 (rollout actions sampled from the actor)", None),
    R("mbpo/dmc_*", "max_rollout_length", 1, f"{LEARNER}:454 (rollout_length=1); {TP}:218 (left at 1)", None),
    R("mbpo/dmc_*", "rollout_min_len", 1, f"{LEARNER}:454 (rollout_length=1, no schedule)", None),
    R("mbpo/dmc_*", "rollout_max_len", 1, f"{LEARNER}:454 (rollout_length=1, no schedule)", None),
    R("mbpo/dmc_*", "model_retain", 10,
      f"{TP}:172-174 (synthetic buffer of replay_buffer_size 1e6 rows = 10 refits of 100k)",
      "the model buffer evicts one refit's 100k rollouts at a time where STFL's ring buffer evicts the oldest "
      "400 each env step"),

    # MVE and STEVE: SAC at the DMC baseline's update rate (the same two rows for each)
    *[row for algo, paper, learner in (("mve", "Feinberg et al. 2018", "SAC learner (as Palenicek et al. 2023)"),
                                       ("steve", "Buckman et al. 2018", "SAC learner"))
      for row in (
          R(f"{algo}/dmc_*", "algo", algo, f"{paper}, sec. 3; {ST}config/core/basic.json:20 ('algo': 'ddpg')",
            f"{learner} with the DMC SAC settings (STFL, the rows above) instead of DDPG "
            "(reference: 128-wide nets, batch 512, 10000 random frames, basic.json:21,23,11)"),
          R(f"{algo}/dmc_*", "updates_per_step", 20,
            f"{ST}config/core/basic.json:29 (frames_per_update 0.25 = 4 updates per frame); {TP}:40 (STFL's rate)",
            "jaxdyna's choice: 20 SAC updates per env step, the rate of the DMC SAC baseline and MBPO, so the "
            f"comparison isolates the value target as on the Brax configs (where SAC and {algo} run 1)"))],
]
del R

# Keys a config may carry before the table has a row for them: key -> (where, why).
PENDING = {"steve_heads": ("steve/*", "added to the steve configs once the min/mean choice is measured")}

# The shipped configs: algo -> envs.
MUJOCO = ("hopper", "walker2d", "halfcheetah", "ant", "humanoid", "inverted_pendulum")
# DeepMind Control tasks (MuJoCo Playground): file stem -> action size (actuators in Playground's xmls)
DMC_ACTIONS = {"dmc_cartpole_swingup": 1, "dmc_reacher_easy": 2, "dmc_cheetah_run": 6, "dmc_walker_walk": 6,
               "dmc_hopper_hop": 4}
SHIPPED = {"mbpo": MUJOCO + tuple(DMC_ACTIONS), "dyna": MUJOCO + tuple(DMC_ACTIONS),
           "mve": MUJOCO + tuple(DMC_ACTIONS), "steve": MUJOCO + tuple(DMC_ACTIONS),
           "sac": MUJOCO + ("inverted_double_pendulum", "reacher") + tuple(DMC_ACTIONS)}

SOURCE_PATTERN = re.compile(r"[\w./-]+\.(py|json|yaml):\d+|\b(sec\.|App\.|Table|Fig\.|Algorithm)\s")


@functools.lru_cache(maxsize=None)
def _configs() -> dict[str, dict[str, Any]]:
    """Every shipped config, by `algo/env`, as `yaml.safe_load` returns it (read once; do not mutate)."""
    return {f"{p.parent.name}/{p.stem}": yaml.safe_load(p.read_text()) for p in sorted(CONFIGS.glob("*/*.yaml"))
            if p.parent.name != "sweeps"}         # configs/sweeps/ holds sweep files, not configs


def _applies(where: str, name: str) -> bool:
    globs = where.split()
    include = [g for g in globs if not g.startswith("!")]
    exclude = [g[1:] for g in globs if g.startswith("!")]
    return (any(fnmatch.fnmatchcase(name, g) for g in include)
            and not any(fnmatch.fnmatchcase(name, g) for g in exclude))


def _same(expected: Any, actual: Any) -> bool:
    """Raw YAML value equality: booleans and strings exactly, numbers with math.isclose, lists item-wise."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and math.isclose(expected, actual, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(_same(e, a) for e, a in zip(expected, actual)))
    return type(expected) is type(actual) and expected == actual


def test_the_shipped_configs_are_the_tabled_ones():
    expected = {f"{algo}/{env}" for algo, envs in SHIPPED.items() for env in envs}
    assert set(_configs()) == expected
    assert len(expected) == 32 + 25


def test_every_row_matches_its_configs():
    configs = _configs()
    bad = []
    for row in TABLE:
        names = [n for n in configs if _applies(row.where, n)]
        assert names, f"row {row.where!r} {row.key} matches no shipped config"
        for name in names:
            if row.key not in configs[name]:
                bad.append(f"{name}: {row.key} missing (table: {row.value!r}, {row.source})")
            elif not _same(row.value, configs[name][row.key]):
                bad.append(f"{name}: {row.key} = {configs[name][row.key]!r}, table says {row.value!r} ({row.source})")
    assert not bad, "\n".join(bad)


def test_every_config_key_has_exactly_one_row():
    bad = []
    for name, cfg in _configs().items():
        for key in cfg:
            rows = [r for r in TABLE if r.key == key and _applies(r.where, name)]
            if not rows and key in PENDING and _applies(PENDING[key][0], name):
                continue
            if len(rows) != 1:
                bad.append(f"{name}: {key} is covered by {len(rows)} rows (need exactly 1)")
    assert not bad, "\n".join(bad)


def test_every_row_names_its_source_and_reason():
    for row in TABLE:
        where = f"{row.where} {row.key}"
        assert row.where.strip() and row.key.strip(), where
        assert isinstance(row.source, str) and SOURCE_PATTERN.search(row.source), \
            f"{where}: source must name a file:line or a paper section, got {row.source!r}"
        assert row.departure is None or (isinstance(row.departure, str) and row.departure.strip()), where
        if "jaxdyna's choice" in row.source:
            assert row.departure, f"{where}: a value that is jaxdyna's choice is a departure; give the reason"
    assert len({(r.where, r.key) for r in TABLE}) == len(TABLE), "duplicate (where, key) rows"


def test_pending_keys_have_no_row_yet():
    for key, (where, why) in PENDING.items():
        assert why and not any(r.key == key for r in TABLE), f"{key}: has a row now; remove it from PENDING"
        assert any(_applies(where, n) for n in _configs())


def test_model_weight_decay_has_one_coefficient_per_layer():
    for name, cfg in _configs().items():
        if "model_weight_decay" in cfg:
            assert len(cfg["model_weight_decay"]) == len(cfg["model_hidden"]) + 1, name


def test_mbpo_model_buffer_keeps_model_retain_epochs_of_refits():
    """jaxdyna's model_retain counts refits; MBPO's model_retain_epochs counts epochs (mbpo.py:355-357)."""
    retain_epochs = {"humanoid": 5}  # examples/config/<env>/0.py:23; 1 elsewhere
    for name, cfg in _configs().items():
        if name.startswith("mbpo/") and not _applies(DMC, name):
            env = name.split("/")[1]
            epochs = retain_epochs.get(env, 1)
            assert cfg["model_retain"] * cfg["model_train_freq"] == epochs * cfg["epoch_length"], name


def test_dmc_configs_follow_stfl_mechanics():
    """The DMC configs' derived quantities: STFL's synthetic buffer, refit budget, entropy target, MJX."""
    for name, cfg in _configs().items():
        if not _applies(DMC, name):
            continue
        assert "backend" not in cfg, f"{name}: Playground envs always run MJX; leave backend out"
        assert cfg["target_entropy"] == -DMC_ACTIONS[name.split("/")[1]] / 2, name   # mbpo_learner.py:274-275
        if cfg.get("model") != "learned":
            continue
        # one refit: the newest model_max_train rows, 20% held out, model_max_epochs passes of the rest
        n_hold = min(cfg["model_max_holdout"], int(cfg["model_holdout_ratio"] * cfg["model_max_train"]))
        steps = cfg["model_max_epochs"] * -(-(cfg["model_max_train"] - n_hold) // cfg["model_batch_size"])
        assert abs(steps - 5000) <= 50, f"{name}: {steps} Adam steps per refit, STFL takes 5000"
        assert cfg["model_patience"] >= cfg["model_max_epochs"], f"{name}: STFL never stops a refit early"
        if name.startswith("mbpo/"):
            # 400 rollouts per env step (train_parallel.py:51) into a synthetic buffer of 1e6 rows (:172-174)
            assert cfg["rollout_batch_size"] == 400 * cfg["model_train_freq"], name
            assert cfg["model_retain"] * cfg["rollout_batch_size"] * cfg["max_rollout_length"] == 1_000_000, name
