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

Conventions: dyna, mve and steve reuse MBPO's SAC and MBPO's model-fitting recipe, so the rows they
share with mbpo cite MBPO. mve and steve swap their papers' DDPG learner for SAC; that swap (and the
DDPG-side settings it replaces) is recorded once, on their `algo` rows.
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

ALL = "*/*"
LOCOMOTION = "*/hopper */walker2d */halfcheetah */ant */humanoid"
MODEL_BASED = "mbpo/* dyna/* mve/* steve/*"
PENDULUM_MB = "mbpo/inverted_pendulum dyna/inverted_pendulum mve/inverted_pendulum steve/inverted_pendulum"
MBPO_WEIGHT_DECAY = [2.5e-5, 5.0e-5, 7.5e-5, 7.5e-5, 1.0e-4]

R = Row
TABLE: list[Row] = [
    # --- SAC, shared by all 32 configs ---------------------------------------------------------------
    R(ALL, "backend", "generalized", f"{HOP}:3 ('universe': 'gym', MuJoCo v2 tasks)",
      "Brax physics (generalized backend) instead of gym MuJoCo: observations, rewards and termination "
      "differ, so returns are not comparable number for number with the papers'"),
    R("* !sac/reacher", "episode_length", 1000, f"{BASE}:38 (DEFAULT_MAX_PATH_LENGTH)", None),
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
    R("sac/*", "algo", "sac", f"{MB}softlearning/algorithms/sac.py:36-44 (the SAC of MBPO's comparisons); {SAC_TABLE}",
      None),
    R("sac/*", "updates_per_step", 1, f"{MB}softlearning/algorithms/rl_algorithm.py:28 (n_train_repeat=1); {SAC_TABLE}",
      None),

    # --- the learned model (shared by mbpo, dyna, mve, steve) ----------------------------------------
    R(MODEL_BASED, "model", "learned", f"{CONSTRUCTOR}:7-18 (probabilistic ensemble, BNN)", None),
    R("mbpo/* dyna/*", "ensemble_size", 7, f"{HOP}:26 ('num_networks': 7)", None),
    R("mve/*", "ensemble_size", 7, f"{ST}config/algos/mve_tdk.json:2-5 (inherits no core/bayesian.json: one model)",
      "MBPO's 7-member ensemble instead of MVE's single dynamics model (rollouts use a random elite per sample)"),
    R("steve/*", "ensemble_size", 7, f"{ST}config/core/bayesian.json:14 (transition ensemble_size 4)",
      "MBPO's 7-member ensemble instead of STEVE's 4 transition models (and 4 reward models, "
      "bayesian.json:19; jaxdyna's members predict reward and next state together)"),
    R("mbpo/* dyna/*", "num_elites", 5, f"{HOP}:27", None),
    R("mve/* steve/*", "num_elites", 5, f"{HOP}:27 (MBPO); MVE and STEVE have no elites",
      "MBPO's elite selection (5 of 7 by holdout loss) kept for mve/steve"),
    R("mbpo/* dyna/* !*/humanoid", "model_hidden", [200, 200, 200, 200],
      f"{CONSTRUCTOR}:12-15 (4 swish layers of hidden_dim); {ALGO}:70 (hidden_dim=200)", None),
    R("mbpo/humanoid dyna/humanoid", "model_hidden", [400, 400, 400, 400],
      f"{MB}examples/config/humanoid/0.py:32 ('hidden_dim': 400); {CONSTRUCTOR}:12-15", None),
    R("mve/* steve/* !*/humanoid", "model_hidden", [200, 200, 200, 200],
      f"{ST}config/core/model.json:4 (transition_hidden_dim 512)",
      "MBPO's member MLP (4x200 swish, constructor.py:12-15) instead of STEVE's transition network"),
    R("mve/humanoid steve/humanoid", "model_hidden", [400, 400, 400, 400],
      f"{ST}config/core/model.json:4 (transition_hidden_dim 512)",
      "MBPO's humanoid member MLP (4x400, examples/config/humanoid/0.py:32) instead of STEVE's"),
    R("mbpo/* !mbpo/humanoid", "model_train_freq", 250, f"{HOP}:22 (inverted_pendulum/0.py:23)", None),
    R("mbpo/humanoid", "model_train_freq", 1000, f"{MB}examples/config/humanoid/0.py:22", None),
    R("dyna/*", "model_train_freq", 250, f"{HOP}:22 (MBPO's cadence); {SB}",
      "jaxdyna's choice: refit every 250 env steps on every env (humanoid too, where MBPO refits every "
      "1000) so Dyna's flushed one-refit model buffer stays fresh"),
    R("mve/* steve/*", "model_train_freq", 250,
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
    R("mbpo/*", "algo", "mbpo", "Janner et al. 2019, Algorithm 2", None),
    R("mbpo/* !mbpo/inverted_pendulum", "epoch_length", 1000, f"{HOP}:11", None),
    R("mbpo/inverted_pendulum", "epoch_length", 250, f"{IP}:12", None),
    R("mbpo/hopper mbpo/walker2d mbpo/ant mbpo/humanoid", "updates_per_step", 20, f"{HOP}:13 ('n_train_repeat')", None),
    R("mbpo/halfcheetah", "updates_per_step", 40, f"{MB}examples/config/halfcheetah/0.py:13", None),
    R("mbpo/inverted_pendulum", "updates_per_step", 10, f"{IP}:14", None),
    R("mbpo/*", "real_ratio", 0.05, f"{HOP}:28 (inverted_pendulum/0.py:29)", None),
    R("mbpo/*", "rollout_batch_size", 100_000, f"{HOP}:24 (inverted_pendulum/0.py:25)", None),
    R("mbpo/*", "action_source", "policy", f"{ALGO}:389 (rollout actions from the current policy)", None),
    R("mbpo/* !mbpo/humanoid !mbpo/inverted_pendulum", "model_retain", 4,
      f"{HOP}:23 (model_retain_epochs 1 x 1000 steps / 250 per refit); {ALGO}:355-357", None),
    R("mbpo/humanoid", "model_retain", 5,
      f"{MB}examples/config/humanoid/0.py:23 (model_retain_epochs 5 x 1000 steps / 1000 per refit)", None),
    R("mbpo/inverted_pendulum", "model_retain", 1, f"{IP}:24 (model_retain_epochs 1 x 250 steps / 250 per refit)",
      None),
    # rollout schedule [start_epoch, end_epoch, min_len, max_len], examples/config/<env>/0.py:31
    R("mbpo/* !mbpo/inverted_pendulum", "rollout_start_epoch", 20, f"{HOP}:31 (rollout_schedule[0])", None),
    R("mbpo/inverted_pendulum", "rollout_start_epoch", 1, f"{IP}:32", None),
    R("mbpo/hopper mbpo/walker2d mbpo/halfcheetah", "rollout_end_epoch", 150, f"{HOP}:31 (rollout_schedule[1])",
      None),
    R("mbpo/ant", "rollout_end_epoch", 100, f"{MB}examples/config/ant/0.py:31", None),
    R("mbpo/humanoid", "rollout_end_epoch", 300, f"{MB}examples/config/humanoid/0.py:31", None),
    R("mbpo/inverted_pendulum", "rollout_end_epoch", 15, f"{IP}:32", None),
    R("mbpo/*", "rollout_min_len", 1, f"{HOP}:31 (rollout_schedule[2]; inverted_pendulum/0.py:32)", None),
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
    R("dyna/* !dyna/inverted_pendulum", "epoch_length", 1000, f"{HOP}:11 (MBPO's epoch)",
      "jaxdyna's choice: MBPO's epoch length; unused, Dyna's rollout length is constant 1"),
    R("dyna/inverted_pendulum", "epoch_length", 250, f"{IP}:12 (MBPO's epoch)",
      "jaxdyna's choice: MBPO's epoch length; unused, Dyna's rollout length is constant 1"),

    # --- MVE -------------------------------------------------------------------------------------------
    R("mve/*", "algo", "mve", f"Feinberg et al. 2018, sec. 3; {ST}config/core/basic.json:20 ('algo': 'ddpg')",
      "SAC learner (as Palenicek et al. 2023) with MBPO's SAC settings instead of DDPG (reference: 128-wide "
      "nets, batch 512, 10000 random frames, basic.json:21,23,11; vlad17/mve experiments/hc5.yaml:17-22)"),
    R("mve/*", "value_horizon", 3, f"{ST}config/algos/mve_tdk.json:9 (rollout_len 3; Feinberg's own HalfCheetah "
      "run uses 5, vlad17/mve experiments/hc5.yaml:25)", None),
    R("mve/*", "horizon", 3, f"{ST}config/algos/mve_tdk.json:9", None),
    R("mve/*", "td_k", True, f"{ST}config/algos/mve_tdk.json:10 (tdk_trick); Feinberg et al. 2018, sec. 3.1", None),
    R("mve/*", "updates_per_step", 1,
      f"{ST}config/core/basic.json:29 (frames_per_update 0.25 = 4 updates per frame); vlad17/mve "
      "experiments/hc5.yaml:12 (learner_batches_per_timestep 4)",
      "1 SAC update per env step, as the SAC baseline, so the comparison isolates the value target; each "
      "update already runs H model steps"),

    # --- STEVE -----------------------------------------------------------------------------------------
    R("steve/*", "algo", "steve", f"Buckman et al. 2018, sec. 3; {ST}config/core/basic.json:20 ('algo': 'ddpg')",
      "SAC learner with MBPO's SAC settings instead of DDPG (reference: 128-wide nets, batch 512, 10000 "
      "random frames, basic.json:21,23,11)"),
    R("steve/*", "value_horizon", 3, f"{ST}config/algos/steve.json:10 (rollout_len 3)", None),
    R("steve/*", "horizon", 3, f"{ST}config/algos/steve.json:10", None),
    R("steve/*", "num_critics", 2, f"{ST}config/core/bayesian.json:5 (Q ensemble_size 4)",
      "2 Q heads (SAC's twin Q) instead of STEVE's 4: candidate targets come from 7 members x 2 heads"),
    R("steve/*", "updates_per_step", 1,
      f"{ST}config/core/basic.json:29 (frames_per_update 0.25 = 4 updates per frame)",
      "1 SAC update per env step, as the SAC baseline, so the comparison isolates the value target; each "
      "update already runs H model steps per member"),
]
del R

# Keys a config may carry before the table has a row for them: key -> (where, why).
PENDING = {"steve_heads": ("steve/*", "added to the steve configs once the min/mean choice is measured")}

# The shipped configs: algo -> envs.
MUJOCO = ("hopper", "walker2d", "halfcheetah", "ant", "humanoid", "inverted_pendulum")
SHIPPED = {"mbpo": MUJOCO, "dyna": MUJOCO, "mve": MUJOCO, "steve": MUJOCO,
           "sac": MUJOCO + ("inverted_double_pendulum", "reacher")}

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
    assert len(expected) == 32


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
        if name.startswith("mbpo/"):
            env = name.split("/")[1]
            epochs = retain_epochs.get(env, 1)
            assert cfg["model_retain"] * cfg["model_train_freq"] == epochs * cfg["epoch_length"], name
