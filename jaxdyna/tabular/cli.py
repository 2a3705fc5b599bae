"""`jaxdyna maze ...`: Dyna-Q / Dyna-Q+ on the book's mazes or a maze drawn in a text file.

  jaxdyna maze dyna-maze                       # Figure 8.2: Dyna-Q n=0,5,50, 30 runs, 50 episodes
  jaxdyna maze blocking                        # Figure 8.4: Dyna-Q vs Dyna-Q+, 3000 steps
  jaxdyna maze shortcut --runs 10 --out DIR    # Figure 8.5: Dyna-Q vs Dyna-Q+, 6000 steps
  jaxdyna maze --layout my_maze.txt --n 0,10 --episodes 30

Writes DIR/steps_per_episode.{csv,png} (episode budget) or DIR/cumulative_reward.{csv,png}
(step budget) and DIR/summary.json with the provenance. Standalone: python -m jaxdyna.tabular.cli maze ...
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

from jaxdyna.config import ConfigError
from jaxdyna.io import check_writable_dir, provenance, write_json
from jaxdyna.tabular.dyna_q import Hparams, dyna_q, dyna_q_plus
from jaxdyna.tabular.maze import MAZES, Maze, get_maze, parse_layout, shortest_path_length

ALGOS = ("dyna-q", "dyna-q+")

# Per-maze presets. The Dyna Maze uses the book's Example 8.1 settings. The book does not give
# n or alpha for Examples 8.2/8.3; in these deterministic mazes alpha = 1 makes each update exact
# (with alpha = 0.1 the same ordering appears, but unlearning a blocked path takes far longer).
PRESETS = {
    "dyna-maze": dict(algo="dyna-q", n="0,5,50", episodes=50, alpha=0.1),
    "blocking": dict(algo="dyna-q,dyna-q+", n="10", steps=3000, alpha=1.0),
    "shortcut": dict(algo="dyna-q,dyna-q+", n="10", steps=6000, alpha=1.0),
}
DEFAULT_KAPPA = 1e-3


class MazeInputError(ValueError):
    """Bad user input for `jaxdyna maze`; the message is one line naming the field."""


def add_maze_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `maze` subcommand on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "maze", help="tabular Dyna-Q / Dyna-Q+ on gridworld mazes (Sutton & Barto ch. 8)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("maze", nargs="?", help=f"built-in maze: {', '.join(MAZES)} (or use --layout)")
    p.add_argument("--layout", metavar="FILE.txt",
                   help="text maze: rows of '.' free, '#' wall, 'S' start, 'G' goal; an optional second "
                        "grid after a blank line gives the walls from --change-step on")
    p.add_argument("--change-step", metavar="N", help="real step at which the walls change")
    p.add_argument("--algo", help="comma list of dyna-q, dyna-q+ (default: per maze)")
    p.add_argument("--n", metavar="0,5,50", help="comma list of planning steps per real step")
    p.add_argument("--runs", default="30", help="independent runs per config (default 30)")
    p.add_argument("--episodes", metavar="E", help="budget in episodes: plot steps per episode")
    p.add_argument("--steps", metavar="T", help="budget in real steps: plot cumulative reward")
    p.add_argument("--max-steps", default="200000", help="episode budget: cap on simulated steps")
    p.add_argument("--alpha", help="step size (default 0.1; 1.0 for blocking/shortcut)")
    p.add_argument("--epsilon", default="0.1", help="exploration rate (default 0.1)")
    p.add_argument("--gamma", default="0.95", help="discount (default 0.95)")
    p.add_argument("--kappa", default=str(DEFAULT_KAPPA), help=f"Dyna-Q+ bonus scale (default {DEFAULT_KAPPA})")
    p.add_argument("--seed", default="0", help="random seed (default 0)")
    p.add_argument("--out", help="output directory (default results/runs/maze/<maze>)")
    p.set_defaults(func=run_maze)
    return p


def _number(value, field: str, kind=float, lo=None, hi=None, lo_open=False):
    """Parse a number from the command line, or raise MazeInputError naming the field and range."""
    allowed = f"{'an integer' if kind is int else 'a number'}"
    if lo is not None or hi is not None:
        left = "(" if lo_open else "["
        allowed += f" in {left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    try:
        x = kind(value)
    except (TypeError, ValueError):
        raise MazeInputError(f"{field}: {value!r} is not valid; expected {allowed}") from None
    if (kind is float and not math.isfinite(x)) or (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
        raise MazeInputError(f"{field}: {value!r} is out of range; expected {allowed}")
    return x


def _load_maze(args) -> Maze:
    """The maze named by the positional argument or drawn in --layout, with --change-step applied."""
    change = None if args.change_step is None else _number(args.change_step, "--change-step", int, lo=0)
    if args.layout is not None:
        if args.maze is not None:
            raise MazeInputError(f"maze: give a built-in maze ({', '.join(MAZES)}) or --layout, not both")
        path = Path(args.layout)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise MazeInputError(f"--layout: cannot read {str(path)!r} ({e.__class__.__name__})") from None
        try:
            maze = parse_layout(text, path.stem, change)
        except ValueError as e:
            raise MazeInputError(f"--layout {path}: {e}") from None
    else:
        if args.maze is None:
            raise MazeInputError(f"maze: missing; allowed: {', '.join(MAZES)}, or --layout FILE.txt")
        try:
            maze = get_maze(args.maze)
        except ValueError as e:
            raise MazeInputError(f"maze: {e}") from None
        if change is not None:
            if maze.change_step is None:
                raise MazeInputError(f"--change-step: maze {maze.name!r} has no wall change; allowed only for "
                                     "blocking, shortcut or a two-grid --layout")
            maze = maze._replace(change_step=change)
    for layout in range(len(maze.walls)):
        if shortest_path_length(maze, layout) is None:
            raise MazeInputError(f"maze: no goal is reachable from the start in grid {layout + 1}")
    return maze


def _configs(args, preset: dict) -> list[Hparams]:
    """The hyperparameter configs: every --algo for every --n."""
    algos = [a.strip() for a in (args.algo or preset["algo"]).split(",") if a.strip()]
    for a in algos:
        if a not in ALGOS:
            raise MazeInputError(f"--algo: unknown algorithm {a!r}; allowed: {', '.join(ALGOS)}")
    if not algos:
        raise MazeInputError(f"--algo: empty; allowed: {', '.join(ALGOS)}")
    n_text = args.n or preset["n"]
    ns = [_number(v, "--n", int, lo=0) for v in n_text.split(",")]
    common = dict(alpha=_number(args.alpha or preset["alpha"], "--alpha", float, lo=0, hi=1, lo_open=True),
                  epsilon=_number(args.epsilon, "--epsilon", float, lo=0, hi=1),
                  gamma=_number(args.gamma, "--gamma", float, lo=0, hi=1))
    kappa = _number(args.kappa, "--kappa", float, lo=0)
    return [dyna_q(n, **common) if a == "dyna-q" else dyna_q_plus(n, kappa, **common) for a in algos for n in ns]


def run_maze(args) -> int:
    """Run the `maze` subcommand; raises MazeInputError on bad input. Returns the exit code."""
    from jaxdyna.tabular.experiments import plot, run_episode_experiment, run_step_experiment, summarize, write_csv

    maze = _load_maze(args)
    if maze.name in PRESETS:
        preset = PRESETS[maze.name]
    elif maze.change_step is not None:
        preset = dict(PRESETS["shortcut"], steps=max(2 * maze.change_step, 1000))
    else:
        preset = PRESETS["dyna-maze"]
    configs = _configs(args, preset)
    runs = _number(args.runs, "--runs", int, lo=1)
    seed = _number(args.seed, "--seed", int, lo=0)
    if args.episodes is None and args.steps is None:
        episodes, steps = preset.get("episodes"), preset.get("steps")
    elif args.episodes is not None and args.steps is not None:
        raise MazeInputError("--episodes/--steps: give one budget, not both")
    else:
        episodes = None if args.episodes is None else _number(args.episodes, "--episodes", int, lo=1)
        steps = None if args.steps is None else _number(args.steps, "--steps", int, lo=1)
    out = Path(args.out) if args.out else Path("results") / "runs" / "maze" / maze.name
    try:
        check_writable_dir(out)
    except ConfigError as e:
        raise MazeInputError(str(e)) from None

    if episodes is not None:
        max_steps = _number(args.max_steps, "--max-steps", int, lo=1)
        try:
            result = run_episode_experiment(maze, configs, runs, episodes, seed, max_steps=max_steps)
        except RuntimeError as e:
            raise MazeInputError(f"--max-steps: {e}; raise --max-steps or lower --episodes") from None
        stem, title = "steps_per_episode", f"{maze.name}: steps per episode"
    else:
        result = run_step_experiment(maze, configs, runs, steps, seed)
        stem, title = "cumulative_reward", f"{maze.name}: cumulative reward"

    summary = summarize(result)
    summary["provenance"] = provenance(getattr(args, "command_line", None))
    write_csv(out / f"{stem}.csv", result)
    plot(out / f"{stem}.png", result, title, first_episode=2 if (episodes or 0) >= 2 else 1)
    write_json(out / "summary.json", summary)
    for label, entry in summary["results"].items():
        print(f"{label}: " + ", ".join(f"{k}={v}" for k, v in entry.items()))
    print(f"wrote {out / (stem + '.csv')}, {out / (stem + '.png')}, {out / 'summary.json'} "
          f"({result.elapsed_s:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: python -m jaxdyna.tabular.cli maze ..."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m jaxdyna.tabular.cli")
    add_maze_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["python", "-m", "jaxdyna.tabular.cli", *argv])
    try:
        return args.func(args)
    except MazeInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
