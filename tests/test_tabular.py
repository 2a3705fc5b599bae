"""Tabular Dyna-Q / Dyna-Q+ and the book's mazes (Sutton & Barto 2nd ed., ch. 8)."""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import run_cli
from jaxdyna.tabular.cli import MazeInputError, add_maze_parser, run_maze
from jaxdyna.tabular.dyna_q import dyna_q, dyna_q_plus, make_train, run, run_episodes, to_numpy
from jaxdyna.tabular.experiments import episode_path_use, opened_cells
from jaxdyna.tabular.maze import (BLOCKING_MAZE, DYNA_MAZE, SHORTCUT_MAZE, cell, env_step, make_env,
                                  parse_layout, render, shortest_path_length, transition_table)

UP, DOWN, RIGHT, LEFT = range(4)


# ---------------------------------------------------------------- shared compiled runs

@pytest.fixture(scope="module")
def fig82():
    """Dyna Maze, Dyna-Q with n = 0, 5, 50: steps per episode (config, run, episode), 50 episodes."""
    lengths, _ = run_episodes(DYNA_MAZE, [dyna_q(0), dyna_q(5), dyna_q(50)], runs=10, n_episodes=50, seed=0)
    return lengths


@pytest.fixture(scope="module")
def shortcut():
    """Shortcut maze, 6000 steps: Dyna-Q and Dyna-Q+ (n = 10, alpha = 1, kappa = 1e-3; the CLI preset)."""
    configs = [dyna_q(10, alpha=1.0), dyna_q_plus(10, kappa=1e-3, alpha=1.0)]
    return run(SHORTCUT_MAZE, configs, runs=10, n_steps=6000, seed=0)


# ---------------------------------------------------------------- maze dynamics

def test_dyna_maze_is_the_books():
    m = DYNA_MAZE
    assert (m.height, m.width) == (6, 9)
    assert m.start == cell(m, 2, 0) and m.goals == (cell(m, 0, 8),)
    book_walls = [(1, 2), (2, 2), (3, 2), (0, 7), (1, 7), (2, 7), (4, 5)]
    assert set(m.walls[0]) == {cell(m, r, c) for r, c in book_walls}
    assert m.change_step is None


def test_moves_walls_and_edges():
    m = DYNA_MAZE
    table = transition_table(m)
    assert table[cell(m, 2, 0), UP] == cell(m, 1, 0)
    assert table[cell(m, 2, 0), DOWN] == cell(m, 3, 0)
    assert table[cell(m, 2, 0), LEFT] == cell(m, 2, 0)  # edge: stay
    assert table[cell(m, 2, 1), RIGHT] == cell(m, 2, 1)  # wall (2, 2): stay
    assert table[cell(m, 5, 4), DOWN] == cell(m, 5, 4)  # bottom edge
    assert table[cell(m, 3, 5), DOWN] == cell(m, 3, 5)  # wall (4, 5)
    assert table[cell(m, 0, 6), RIGHT] == cell(m, 0, 6)  # wall (0, 7)
    assert table[cell(m, 1, 8), UP] == cell(m, 0, 8)  # into the goal
    free = [c for c in range(m.n_states) if c not in m.walls[0]]
    assert all(t not in m.walls[0] for c in free for t in table[c])  # never enter a wall


def test_reward_only_on_reaching_goal():
    env = make_env(DYNA_MAZE)
    cells = jnp.repeat(jnp.arange(DYNA_MAZE.n_states), 4)
    acts = jnp.tile(jnp.arange(4), DYNA_MAZE.n_states)
    nxt, reward, done = jax.vmap(lambda c, a: env_step(env, c, a, jnp.int32(0)))(cells, acts)
    goal = np.isin(np.asarray(nxt), DYNA_MAZE.goals)
    np.testing.assert_array_equal(np.asarray(done), goal)
    np.testing.assert_array_equal(np.asarray(reward), goal.astype(np.float32))
    assert done[cell(DYNA_MAZE, 1, 8) * 4 + UP] and not done[cell(DYNA_MAZE, 1, 8) * 4 + LEFT]


def test_shortest_paths():
    assert shortest_path_length(DYNA_MAZE) == 14
    assert [shortest_path_length(BLOCKING_MAZE, i) for i in (0, 1)] == [10, 16]
    assert [shortest_path_length(SHORTCUT_MAZE, i) for i in (0, 1)] == [16, 10]


def test_walls_change_at_change_step():
    m = BLOCKING_MAZE
    env = make_env(m)
    below_gap = jnp.int32(cell(m, 4, 8))
    step = jax.jit(lambda t: env_step(env, below_gap, jnp.int32(UP), t)[0])
    assert int(step(jnp.int32(999))) == cell(m, 3, 8)  # opening on the right before step 1000
    assert int(step(jnp.int32(1000))) == cell(m, 4, 8)  # blocked from step 1000 on
    assert opened_cells(m) == (cell(m, 3, 0),)
    assert opened_cells(SHORTCUT_MAZE) == (cell(SHORTCUT_MAZE, 3, 8),)


def test_layout_round_trip_and_two_grids():
    assert parse_layout(render(DYNA_MAZE), "dyna-maze") == DYNA_MAZE
    two = render(SHORTCUT_MAZE, 0) + "\n\n" + render(SHORTCUT_MAZE, 1)
    assert parse_layout(two, "shortcut", change_step=3000) == SHORTCUT_MAZE
    assert parse_layout("  S.G  \n\n\n").walls == ((),)  # surrounding whitespace and blank lines ignored


@pytest.mark.parametrize("text, change_step, reason", [
    ("", None, "empty"),
    ("S..\n.G", None, "not rectangular"),
    ("S.G\n.x.", None, "character 'x'"),
    ("S.G\nS..", None, "exactly one start"),
    ("S..\n...", None, "no 'G'"),
    ("S.G\n\nS.G\n...", 5, "grid 2 is 2x3"),
    ("S.G\n\n.SG", 5, "same places"),
    ("S.G\n\nS#G", None, "change_step is required"),
    ("S.G", 5, "one grid"),
    ("S.G\n\nS#G\n\nS.G", 5, "3 grids"),
])
def test_malformed_layouts(text, change_step, reason):
    with pytest.raises(ValueError, match=reason):
        parse_layout(text, change_step=change_step)


def test_trajectories_follow_dynamics_and_reset_to_start(shortcut):
    _, rec = shortcut
    m = SHORTCUT_MAZE
    tables = [transition_table(m, 0), transition_table(m, 1)]
    cells, done = rec.cell.reshape(-1, rec.cell.shape[-1]), rec.done.reshape(-1, rec.done.shape[-1])
    prev = np.concatenate([np.full((cells.shape[0], 1), m.start), cells[:, :-1]], axis=1)
    prev[:, 1:][done[:, :-1]] = m.start  # after reaching the goal the agent is back on the start
    t = np.arange(cells.shape[1])
    for layout, steps in ((0, t < m.change_step), (1, t >= m.change_step)):
        allowed = tables[layout][prev[:, steps]]  # (run, step, action)
        assert (allowed == cells[:, steps, None]).any(-1).all()
    np.testing.assert_array_equal(done, np.isin(cells, m.goals))
    np.testing.assert_array_equal(rec.reward.reshape(done.shape), done.astype(np.float32))


# ---------------------------------------------------------------- Dyna-Q: Figure 8.2

def test_first_episode_identical_for_all_n(fig82):
    # Same seeds for every n and Q stays 0 until the first reward, so planning changes nothing yet.
    np.testing.assert_array_equal(fig82[0, :, 0], fig82[1, :, 0])
    np.testing.assert_array_equal(fig82[0, :, 0], fig82[2, :, 0])
    assert (fig82 >= shortest_path_length(DYNA_MAZE)).all()


def test_planning_speeds_up_learning(fig82):
    mean = fig82.mean(axis=1)  # (n, episode)
    near_optimal = mean <= 2 * shortest_path_length(DYNA_MAZE)

    def settled_from(row):  # first episode from which every later mean is near-optimal
        bad = np.flatnonzero(~row)
        return int(bad[-1]) + 2 if bad.size else 1

    n0, n5, n50 = (settled_from(r) for r in near_optimal)
    assert n50 <= 3  # book: n = 50 finds the optimal path by the third episode
    assert n0 >= 4 * n50  # n = 0 takes far longer (book: about 25 episodes)
    assert n0 >= n5 >= n50
    total = mean.sum(axis=1)
    assert total[0] > total[1] > total[2]
    assert mean[0, 1] > 5 * mean[2, 1]  # episode 2: n = 0 is still wandering, n = 50 is near the goal path


# ---------------------------------------------------------------- Dyna-Q+: Figure 8.5

def test_dyna_q_plus_finds_the_shortcut(shortcut):
    _, rec = shortcut
    m = SHORTCUT_MAZE
    late = m.change_step + (rec.cell.shape[-1] - m.change_step) // 2
    use = np.array([[episode_path_use(rec.cell[c, r], rec.done[c, r], opened_cells(m), late)
                     for r in range(rec.cell.shape[1])] for c in range(2)])
    uses_shortcut = (use > 0.5).mean(axis=1)  # fraction of runs mostly taking the shortcut late on
    assert uses_shortcut[1] > 0.5, use
    assert uses_shortcut[0] < 0.5, use
    reward_after = rec.reward[:, :, m.change_step:].sum(-1).mean(-1)
    assert reward_after[1] > reward_after[0]


def test_planning_uses_only_the_model():
    # make_train's pure train(key, hp), vmapped over 8 seeds; one compile serves both configs.
    train = jax.jit(jax.vmap(make_train(DYNA_MAZE, 2000, 5), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(7), 8)
    for hp, plus in ((dyna_q(5), False), (dyna_q_plus(5, kappa=1e-2), True)):
        final, rec = to_numpy(train(keys, hp))
        changed, tried = final.q != 0, final.tried
        visited = tried.any(-1, keepdims=True)
        assert (visited & ~tried).any()  # some actions of visited states remain untried
        assert changed.any()
        assert not (changed & ~visited).any()  # never a value for a state never acted in
        # Dyna-Q updates only pairs tried for real; Dyna-Q+ also plans untried actions (bonus > 0).
        assert (changed & ~tried).any() == plus
        # Untried pairs keep the model's default: back to the same state with reward 0.
        same_state = np.broadcast_to(np.arange(DYNA_MAZE.n_states)[:, None], tried.shape)
        assert (final.model_next[~tried] == same_state[~tried]).all()
        assert (final.model_reward[~tried] == 0).all()
        assert (final.last_tried[tried] > 0).all() and (final.last_tried[~tried] == 0).all()
        assert (final.t == 2000).all() and rec.done.shape == (8, 2000)


# ---------------------------------------------------------------- CLI

def _parse(argv):
    parser = argparse.ArgumentParser()
    add_maze_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["maze", *argv])


@pytest.mark.parametrize("argv, field", [
    (["nowhere"], "maze"),
    ([], "maze"),
    (["dyna-maze", "--runs", "-3"], "--runs"),
    (["dyna-maze", "--runs", "many"], "--runs"),
    (["dyna-maze", "--algo", "sarsa"], "--algo"),
    (["dyna-maze", "--n", "5,-1"], "--n"),
    (["dyna-maze", "--epsilon", "2"], "--epsilon"),
    (["dyna-maze", "--alpha", "0"], "--alpha"),
    (["dyna-maze", "--kappa", "nan"], "--kappa"),
    (["dyna-maze", "--episodes", "0"], "--episodes"),
    (["dyna-maze", "--episodes", "5", "--steps", "100"], "--episodes/--steps"),
    (["dyna-maze", "--change-step", "10"], "--change-step"),
    (["blocking", "--change-step", "-1"], "--change-step"),
    (["--layout", "LAYOUT_BAD"], "--layout"),
    (["--layout", "LAYOUT_WALLED"], "maze"),
    (["--layout", "LAYOUT_MISSING"], "--layout"),
    (["shortcut", "--layout", "LAYOUT_BAD"], "maze"),
])
def test_cli_rejects_bad_input(tmp_path, argv, field):
    files = {"LAYOUT_BAD": "S..#\n.G.", "LAYOUT_WALLED": "S#.\n##G"}
    for name, text in files.items():
        (tmp_path / f"{name}.txt").write_text(text)
    argv = [str(tmp_path / f"{a}.txt") if a.startswith("LAYOUT_") else a for a in argv]
    with pytest.raises(MazeInputError) as err:
        run_maze(_parse(argv + ["--out", str(tmp_path / "out")]))
    msg = str(err.value)
    assert msg.startswith(field) and "\n" not in msg
    assert not (tmp_path / "out").exists()


def _cli(args, cwd):
    return run_cli("maze", *args, cwd=cwd, timeout=120)


def test_cli_end_to_end(tmp_path):
    layout = tmp_path / "tiny.txt"
    layout.write_text("S..#\n.#..\n...G\n")
    out = tmp_path / "out"
    proc = _cli(["--layout", str(layout), "--n", "0,3", "--runs", "2", "--episodes", "4", "--out", str(out)],
                tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = (out / "steps_per_episode.csv").read_text().splitlines()
    assert rows[0] == "episode,Dyna-Q n=0 mean,Dyna-Q n=0 sem,Dyna-Q n=3 mean,Dyna-Q n=3 sem"
    steps = np.array([[float(v) for v in r.split(",")] for r in rows[1:]])
    np.testing.assert_array_equal(steps[:, 0], [1, 2, 3, 4])
    assert (steps[:, [1, 3]] >= 5).all()  # the shortest path of this maze is 5 steps
    assert (out / "steps_per_episode.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shortest_path"] == [5] and summary["runs"] == 2
    assert set(summary["results"]) == {"Dyna-Q n=0", "Dyna-Q n=3"}
    prov = summary["provenance"]
    assert prov["command"].startswith("jaxdyna maze --layout")
    assert {"git_revision", "device", "versions"} <= set(prov)

    bad = _cli(["nowhere"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == \
        "jaxdyna: error: maze: unknown maze 'nowhere'; allowed: dyna-maze, blocking, shortcut"
    assert "Traceback" not in bad.stderr
