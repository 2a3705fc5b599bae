"""The book's maze experiments: run a batch of configs, summarize, write CSV and PNG.

Shared by `jaxdyna maze ...` (jaxdyna.tabular.cli) and benchmarks/maze_figures.py.
Two kinds of experiment:
  * episodes: steps per episode over the first E episodes (Figure 8.2);
  * steps: cumulative reward over T real steps (Figures 8.4 and 8.5).
"""

from __future__ import annotations

import time
from typing import NamedTuple, Sequence

import numpy as np

from jaxdyna.io import atomic_path, write_text
from jaxdyna.tabular.dyna_q import Hparams, run, run_episodes
from jaxdyna.tabular.maze import Maze, render, shortest_path_length


class MazeResult(NamedTuple):
    """Outcome of one experiment; `values` is (config, run, x) with x episodes or steps."""

    maze: Maze
    labels: list[str]
    configs: list[Hparams]
    runs: int
    seed: int
    mode: str  # "episodes" (values = steps per episode) or "steps" (values = cumulative reward)
    values: np.ndarray
    steps_simulated: int
    new_path_use: np.ndarray | None  # (config, run) fraction of late episodes through opened cells
    elapsed_s: float


def config_label(hp: Hparams) -> str:
    """Short legend label, e.g. 'Dyna-Q n=5' or 'Dyna-Q+ n=10 kappa=0.001 alpha=1'."""
    name = "Dyna-Q+" if (hp.kappa > 0 or hp.plan_untried) else "Dyna-Q"
    label = f"{name} n={int(hp.n_planning)}"
    if name == "Dyna-Q+":
        label += f" kappa={hp.kappa:g}"
    if hp.alpha != 0.1:
        label += f" alpha={hp.alpha:g}"
    if hp.epsilon != 0.1:
        label += f" epsilon={hp.epsilon:g}"
    if hp.gamma != 0.95:
        label += f" gamma={hp.gamma:g}"
    return label


def opened_cells(maze: Maze) -> tuple[int, ...]:
    """Cells that are walls before the change and free after it (the new path)."""
    return tuple(sorted(set(maze.walls[0]) - set(maze.walls[-1])))


def episode_path_use(cells: np.ndarray, done: np.ndarray, targets: Sequence[int], from_step: int) -> float:
    """Fraction of the episodes that start at or after `from_step` and finish, that pass a target cell.

    `cells`, `done` are one run's StepRecord fields over steps. NaN if no such episode.
    """
    ends = np.flatnonzero(done)
    starts = np.concatenate([[0], ends[:-1] + 1])
    hit = np.isin(cells, np.asarray(targets))
    used = [hit[s:e + 1].any() for s, e in zip(starts, ends) if s >= from_step]
    return float(np.mean(used)) if used else float("nan")


def run_episode_experiment(maze: Maze, configs: Sequence[Hparams], runs: int, n_episodes: int,
                           seed: int = 0, max_steps: int = 1_000_000) -> MazeResult:
    """Steps per episode over the first n_episodes of every run (Figure 8.2 protocol)."""
    t0 = time.perf_counter()
    lengths, n_steps = run_episodes(maze, configs, runs, n_episodes, seed, max_steps=max_steps)
    return MazeResult(maze, [config_label(c) for c in configs], list(configs), runs, seed, "episodes",
                      lengths, n_steps, None, time.perf_counter() - t0)


def run_step_experiment(maze: Maze, configs: Sequence[Hparams], runs: int, n_steps: int,
                        seed: int = 0) -> MazeResult:
    """Cumulative reward over n_steps real steps (Figures 8.4 and 8.5 protocol).

    For a maze whose change opens cells, also records per run the fraction of episodes in the
    second half of the post-change period that pass through an opened cell.
    """
    t0 = time.perf_counter()
    _, records = run(maze, configs, runs, n_steps, seed)
    cum = records.reward.cumsum(axis=-1)
    use = None
    opened = opened_cells(maze)
    if opened and maze.change_step is not None and maze.change_step < n_steps:
        window_start = maze.change_step + (n_steps - maze.change_step) // 2
        use = np.array([[episode_path_use(records.cell[c, r], records.done[c, r], opened, window_start)
                         for r in range(runs)] for c in range(len(configs))])
    return MazeResult(maze, [config_label(c) for c in configs], list(configs), runs, seed, "steps",
                      cum, n_steps, use, time.perf_counter() - t0)


def mean_sem(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the run axis (axis 1) of (config, run, x) values."""
    mean = values.mean(axis=1)
    runs = values.shape[1]
    sem = values.std(axis=1, ddof=1) / np.sqrt(runs) if runs > 1 else np.zeros_like(mean)
    return mean, sem


def summarize(result: MazeResult) -> dict:
    """Key numbers per config (averages over runs) plus the maze's shortest paths."""
    maze = result.maze
    shortest = [shortest_path_length(maze, i) for i in range(len(maze.walls))]
    mean, _ = mean_sem(result.values.astype(np.float64))
    per_config = {}
    for c, label in enumerate(result.labels):
        m = mean[c]
        if result.mode == "episodes":
            near = np.flatnonzero(m <= 2 * shortest[0])
            entry = {f"mean_steps_episode_{e}": round(float(m[e - 1]), 2)
                     for e in sorted({1, 2, 3, 5, 10, 20, len(m)}) if e <= len(m)}
            entry["mean_total_steps"] = round(float(m.sum()), 1)
            entry["first_episode_within_2x_shortest"] = int(near[0]) + 1 if near.size else None
        else:
            entry = {"mean_cumulative_reward_end": round(float(m[-1]), 2)}
            if maze.change_step is not None and maze.change_step <= len(m):
                at_change = float(m[maze.change_step - 1]) if maze.change_step > 0 else 0.0
                entry["mean_cumulative_reward_at_change"] = round(at_change, 2)
                entry["mean_reward_after_change"] = round(float(m[-1]) - at_change, 2)
            if result.new_path_use is not None:
                use = result.new_path_use[c]
                entry["runs_using_new_path"] = f"{int(np.sum(use > 0.5))}/{result.runs}"
        per_config[label] = entry
    return {
        "maze": maze.name,
        "layout": [render(maze, i) for i in range(len(maze.walls))],
        "change_step": maze.change_step,
        "shortest_path": shortest,
        "mode": result.mode,
        "runs": result.runs,
        "seed": result.seed,
        "steps_simulated": result.steps_simulated,
        "configs": {label: c._asdict() for label, c in zip(result.labels, result.configs)},
        "results": per_config,
        "elapsed_s": round(result.elapsed_s, 2),
    }


def write_csv(path, result: MazeResult) -> None:
    """Columns: episode (or step), then mean and sem over runs for each config."""
    mean, sem = mean_sem(result.values.astype(np.float64))
    x_name = "episode" if result.mode == "episodes" else "step"
    header = [x_name] + [f"{label} {stat}" for label in result.labels for stat in ("mean", "sem")]
    lines = [",".join(f'"{h}"' if "," in h else h for h in header)]
    for i in range(mean.shape[1]):
        row = [str(i + 1)] + [f"{v:.6g}" for c in range(mean.shape[0]) for v in (mean[c, i], sem[c, i])]
        lines.append(",".join(row))
    write_text(path, "\n".join(lines) + "\n")


def plot(path, result: MazeResult, title: str, first_episode: int = 2,
         select: Sequence[int] | None = None) -> None:
    """Figure 8.2-style steps per episode (from `first_episode`) or 8.4/8.5-style cumulative reward.

    `select` picks the configs to draw (default all).
    """
    from matplotlib.figure import Figure

    mean, sem = mean_sem(result.values.astype(np.float64))
    fig = Figure(figsize=(6.4, 4.4), dpi=120)
    ax = fig.add_subplot()
    for c in (range(len(result.labels)) if select is None else select):
        label = result.labels[c]
        if result.mode == "episodes":
            x = np.arange(1, mean.shape[1] + 1)[first_episode - 1:]
            y, e = mean[c, first_episode - 1:], sem[c, first_episode - 1:]
        else:
            x, y, e = np.arange(1, mean.shape[1] + 1), mean[c], sem[c]
        line, = ax.plot(x, y, label=label)
        ax.fill_between(x, y - e, y + e, color=line.get_color(), alpha=0.15, linewidth=0)
    if result.mode == "episodes":
        ax.set_xlabel("Episodes")
        ax.set_ylabel("Steps per episode")
        ax.axhline(shortest_path_length(result.maze, 0), color="gray", linewidth=0.8, linestyle=":",
                   label="shortest path")
    else:
        ax.set_xlabel("Time steps")
        ax.set_ylabel("Cumulative reward")
        if result.maze.change_step is not None and result.maze.change_step < mean.shape[1]:
            ax.axvline(result.maze.change_step, color="gray", linewidth=0.8, linestyle=":",
                       label="walls change")
    ax.set_title(f"{title}\n(mean of {result.runs} runs, band = ±1 s.e.)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
