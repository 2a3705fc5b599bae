"""Tabular Dyna-Q / Dyna-Q+ and the Dyna Maze experiments (Sutton & Barto 2nd ed., ch. 8), in JAX.

The config constructors live in the submodule: `from jaxdyna.tabular.dyna_q import dyna_q, dyna_q_plus`
(re-exporting the function `dyna_q` here would shadow the submodule `jaxdyna.tabular.dyna_q`).
"""

from jaxdyna.tabular.dyna_q import (
    AgentState,
    Hparams,
    StepRecord,
    episode_lengths,
    init_states,
    make_batched_rollout,
    make_rollout,
    make_train,
    run,
    run_episodes,
)
from jaxdyna.tabular.maze import (
    BLOCKING_MAZE,
    DYNA_MAZE,
    MAZES,
    SHORTCUT_MAZE,
    Maze,
    MazeEnv,
    env_step,
    get_maze,
    make_env,
    parse_layout,
    render,
    shortest_path_length,
)

__all__ = [
    "AgentState", "Hparams", "StepRecord", "episode_lengths",
    "init_states", "make_batched_rollout", "make_rollout", "make_train", "run", "run_episodes",
    "BLOCKING_MAZE", "DYNA_MAZE", "MAZES", "SHORTCUT_MAZE", "Maze", "MazeEnv", "env_step",
    "get_maze", "make_env", "parse_layout", "render", "shortest_path_length",
]
