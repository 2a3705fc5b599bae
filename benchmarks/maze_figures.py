"""Reproduce Sutton & Barto (2nd ed.) Figures 8.2, 8.4 and 8.5 with tabular Dyna-Q / Dyna-Q+.

  PYTHONPATH=. python benchmarks/maze_figures.py [--runs 30] [--out results/maze]

Writes fig8_2.{png,csv} (Dyna Maze, steps per episode, n = 0, 5, 50), fig8_4_blocking.{png,csv}
and fig8_5_shortcut.{png,csv} (cumulative reward, Dyna-Q vs Dyna-Q+), summary.json and README.md
with the key numbers and the provenance.

Settings: Figure 8.2 uses the book's alpha = 0.1, epsilon = 0.1, gamma = 0.95. The book gives
neither n nor alpha for Figures 8.4/8.5; the main curves use n = 10, alpha = 1 (exact updates in
these deterministic mazes) and kappa = 1e-3, the `jaxdyna maze blocking|shortcut` presets. The
same agents with alpha = 0.1 run in the same compiled program; they are in the CSV and README
but not drawn.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from jaxdyna.io import describe_versions, provenance, write_json, write_text
from jaxdyna.tabular.cli import DEFAULT_KAPPA, PRESETS
from jaxdyna.tabular.dyna_q import dyna_q, dyna_q_plus
from jaxdyna.tabular.experiments import (MazeResult, plot, run_episode_experiment, run_step_experiment,
                                         summarize, write_csv)
from jaxdyna.tabular.maze import BLOCKING_MAZE, DYNA_MAZE, SHORTCUT_MAZE


def changing_maze_configs(n: int, alpha: float):
    """Dyna-Q and Dyna-Q+ at the preset alpha (plotted) and at the book's default alpha = 0.1."""
    return [dyna_q(n, alpha=alpha), dyna_q_plus(n, DEFAULT_KAPPA, alpha=alpha),
            dyna_q(n), dyna_q_plus(n, DEFAULT_KAPPA)]


def figure_8_2(runs: int, seed: int) -> MazeResult:
    """Dyna Maze: steps per episode over 50 episodes for n = 0, 5, 50."""
    return run_episode_experiment(DYNA_MAZE, [dyna_q(0), dyna_q(5), dyna_q(50)], runs, 50, seed)


def markdown_table(summary: dict, keys: list[tuple[str, str]]) -> str:
    """One row per config, one column per (summary key, header)."""
    lines = ["| config | " + " | ".join(h for _, h in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, entry in summary["results"].items():
        lines.append(f"| {label} | " + " | ".join(str(entry.get(k, "")) for k, _ in keys) + " |")
    return "\n".join(lines)


def readme(summaries: dict, prov: dict, runs: int) -> str:
    """results/maze/README.md: key numbers and provenance."""
    ep_keys = [("mean_steps_episode_1", "ep 1"), ("mean_steps_episode_2", "ep 2"),
               ("mean_steps_episode_3", "ep 3"), ("mean_steps_episode_10", "ep 10"),
               ("mean_steps_episode_20", "ep 20"), ("mean_steps_episode_50", "ep 50"),
               ("first_episode_within_2x_shortest", "first ep. with mean <= 28")]
    step_keys = [("mean_cumulative_reward_at_change", "cum. reward at change"),
                 ("mean_reward_after_change", "reward after change"),
                 ("mean_cumulative_reward_end", "cum. reward at end"),
                 ("runs_using_new_path", "runs using the new path")]
    versions = describe_versions(prov)
    return f"""# Dyna Maze experiments (Sutton & Barto 2nd ed., ch. 8)

Tabular Dyna-Q / Dyna-Q+ in JAX (`jaxdyna.tabular`), means over {runs} runs (same seeds for every
config). epsilon = 0.1, gamma = 0.95 throughout.

## Figure 8.2: Dyna Maze, steps per episode (`fig8_2.png`, `fig8_2.csv`)

Dyna-Q, alpha = 0.1. Shortest path: 14 steps (about 16-17 is the epsilon-greedy floor).
The first episode is a random walk, identical for every n (Q stays 0 until the first reward).

{markdown_table(summaries['fig8_2'], ep_keys)}

## Figure 8.4: blocking maze (`fig8_4_blocking.png`, `fig8_4_blocking.csv`)

3000 steps; the right-hand gap closes and a left-hand one opens at step 1000 (shortest path
10 -> 16). n = 10, kappa = {DEFAULT_KAPPA} for Dyna-Q+. The book gives no alpha for Examples 8.2/8.3:
the figure shows alpha = 1 (exact updates in a deterministic maze); the alpha = 0.1 rows are in
the CSV only. "Runs using the new path": runs whose episodes in the second half of the
post-change period mostly pass through the newly opened cell.

{markdown_table(summaries['fig8_4_blocking'], step_keys)}

## Figure 8.5: shortcut maze (`fig8_5_shortcut.png`, `fig8_5_shortcut.csv`)

6000 steps; a shortcut on the right opens at step 3000 (shortest path 16 -> 10). Same agents.

{markdown_table(summaries['fig8_5_shortcut'], step_keys)}

With alpha = 0.1, Dyna-Q+ (kappa = {DEFAULT_KAPPA}) earns far less than Dyna-Q before the change in
both mazes. Likely cause (not investigated further): until the goal values have propagated,
which takes long at alpha = 0.1, the planning values come mostly from the exploration bonus,
so the agent keeps exploring instead of heading for the goal.

How the settings were chosen: a short look (30 runs) at kappa in {{1e-4, 1e-3, 1e-2}}, alpha in
{{0.1, 1}} and n in {{10, 50}}. kappa = 1e-2 swamped the goal reward (a few rewards in total) and
kappa = 1e-4 did not find the shortcut (0/30 runs at n = 10, alpha = 1); n = 50 gave the same ordering
as n = 10. The Figure 8.2 settings are the book's and were not varied.

## Provenance

- command: `{prov['command']}`
- git revision: `{prov['git_revision']}`
- device: {prov['device']}
- versions: {versions}
- wall clock (s): fig 8.2 {summaries['fig8_2']['elapsed_s']}, fig 8.4 {summaries['fig8_4_blocking']['elapsed_s']}, fig 8.5 {summaries['fig8_5_shortcut']['elapsed_s']} (including compilation)

`summary.json` holds these numbers, every config's hyperparameters and the maze layouts.
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/maze"))
    args = parser.parse_args(argv)
    prov = provenance(shlex.join(["python", "benchmarks/maze_figures.py", *argv]))

    summaries = {}
    result = figure_8_2(args.runs, args.seed)
    write_csv(args.out / "fig8_2.csv", result)
    plot(args.out / "fig8_2.png", result, "Figure 8.2: Dyna Maze, Dyna-Q", first_episode=2)
    summaries["fig8_2"] = summarize(result)

    for stem, maze, title in (("fig8_4_blocking", BLOCKING_MAZE, "Figure 8.4: blocking maze"),
                              ("fig8_5_shortcut", SHORTCUT_MAZE, "Figure 8.5: shortcut maze")):
        preset = PRESETS[maze.name]
        configs = changing_maze_configs(int(preset["n"]), preset["alpha"])
        result = run_step_experiment(maze, configs, args.runs, preset["steps"], args.seed)
        write_csv(args.out / f"{stem}.csv", result)
        plot(args.out / f"{stem}.png", result, title, select=[0, 1])
        summaries[stem] = summarize(result)

    for name, s in summaries.items():
        print(name, s["elapsed_s"], "s")
        for label, entry in s["results"].items():
            print(f"  {label}: {entry}")
    write_json(args.out / "summary.json", {"provenance": prov, **summaries})
    write_text(args.out / "README.md", readme(summaries, prov, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
