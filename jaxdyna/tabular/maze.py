"""Deterministic gridworld mazes (Sutton & Barto 2nd ed., ch. 8) as pure JAX environments.

A maze is described by a text layout: one line per row, `.` free, `#` wall, `S` the start,
`G` a goal (one or more). A layout may hold two grids separated by a blank line; the second
grid gives the walls from `change_step` real steps on (the blocking and shortcut mazes).

Cells are numbered row-major, `cell = row * width + col`, row 0 at the top. Actions are
0 up, 1 down, 2 right, 3 left. Moving into a wall or off the grid leaves the agent in place.
Entering a goal gives reward 1 and ends the episode; the agent is then put back on the start.
Every other transition gives reward 0. An agent standing on a cell that becomes a wall at
change_step is not moved; its next move takes it out as from any free cell.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACTION_NAMES = ("up", "down", "right", "left")
N_ACTIONS = 4
_MOVES = np.array([[-1, 0], [1, 0], [0, 1], [0, -1]], dtype=np.int32)  # (drow, dcol) per action
_CHARS = ".#SG"
NO_CHANGE = np.iinfo(np.int32).max  # change_step of a maze whose walls never change


class Maze(NamedTuple):
    """A maze as hashable Python data (static under jit).

    walls holds the sorted wall cells of each layout: one tuple for a fixed maze, two for a
    maze whose walls switch to the second layout at real step `change_step`.
    """

    name: str
    height: int
    width: int
    start: int
    goals: tuple[int, ...]
    walls: tuple[tuple[int, ...], ...]
    change_step: int | None = None

    @property
    def n_states(self) -> int:
        return self.height * self.width


class MazeEnv(NamedTuple):
    """The arrays of a maze, as a pytree of JAX arrays (what the jitted code closes over)."""

    walls: jax.Array  # (2, n_states) bool: layout before / from change_step
    goal: jax.Array  # (n_states,) bool
    start: jax.Array  # () int32
    change_step: jax.Array  # () int32
    height: jax.Array  # () int32
    width: jax.Array  # () int32


def parse_layout(text: str, name: str = "custom", change_step: int | None = None) -> Maze:
    """Parse a text layout into a Maze; raise ValueError with a one-line reason if malformed.

    Two grids separated by a blank line define a wall change at `change_step` (required then);
    both grids must have the same shape, start and goals.
    """
    grids = _split_grids(text)
    if not grids:
        raise ValueError("layout is empty; expected rows of '.', '#', 'S', 'G'")
    if len(grids) > 2:
        raise ValueError(f"layout has {len(grids)} grids; expected 1, or 2 separated by a blank line")
    parsed = [_parse_grid(g, i) for i, g in enumerate(grids)]
    (height, width, start, goals, walls0) = parsed[0]
    walls = [walls0]
    if len(parsed) == 2:
        h1, w1, s1, g1, walls1 = parsed[1]
        if (h1, w1) != (height, width):
            raise ValueError(f"grid 2 is {h1}x{w1} but grid 1 is {height}x{width}; both must match")
        if (s1, g1) != (start, goals):
            raise ValueError("grid 2 must have its S and G in the same places as grid 1")
        walls.append(walls1)
        if change_step is None:
            raise ValueError("change_step is required for a layout with two grids")
    if change_step is not None:
        if len(parsed) == 1:
            raise ValueError("change_step given but the layout has one grid; add a second grid")
        if int(change_step) < 0:
            raise ValueError(f"change_step must be >= 0, got {change_step}")
        change_step = int(change_step)
    return Maze(name, height, width, start, goals, tuple(walls), change_step)


def _split_grids(text: str) -> list[list[str]]:
    """Split text into grids (lists of rows) at blank lines."""
    grids: list[list[str]] = [[]]
    for line in text.splitlines():
        row = line.strip()
        if row:
            grids[-1].append(row)
        elif grids[-1]:
            grids.append([])
    return [g for g in grids if g]


def _parse_grid(rows: Sequence[str], index: int) -> tuple[int, int, int, tuple[int, ...], tuple[int, ...]]:
    """Return (height, width, start, goals, walls) of one grid, validating it."""
    where = f"grid {index + 1}"
    width = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{where} is not rectangular: row {r} has {len(row)} cells, row 0 has {width}")
        bad = sorted(set(row) - set(_CHARS))
        if bad:
            raise ValueError(f"{where} row {r} has character {bad[0]!r}; allowed: '.' free, '#' wall, 'S' start, 'G' goal")
    cells = "".join(rows)
    starts = [i for i, ch in enumerate(cells) if ch == "S"]
    goals = tuple(i for i, ch in enumerate(cells) if ch == "G")
    if len(starts) != 1:
        raise ValueError(f"{where} has {len(starts)} 'S' cells; exactly one start is required")
    if not goals:
        raise ValueError(f"{where} has no 'G' cell; at least one goal is required")
    walls = tuple(i for i, ch in enumerate(cells) if ch == "#")
    return len(rows), width, starts[0], goals, walls


def render(maze: Maze, layout: int = 0) -> str:
    """The text layout of one of the maze's wall layouts (inverse of parse_layout)."""
    chars = ["."] * maze.n_states
    for c in maze.walls[layout]:
        chars[c] = "#"
    for c in maze.goals:
        chars[c] = "G"
    chars[maze.start] = "S"
    return "\n".join("".join(chars[r * maze.width:(r + 1) * maze.width]) for r in range(maze.height))


def cell(maze: Maze, row: int, col: int) -> int:
    """Cell index of (row, col)."""
    return row * maze.width + col


def make_env(maze: Maze) -> MazeEnv:
    """The JAX arrays of a maze."""
    walls = np.zeros((2, maze.n_states), dtype=bool)
    walls[0, list(maze.walls[0])] = True
    walls[1, list(maze.walls[-1])] = True
    goal = np.zeros(maze.n_states, dtype=bool)
    goal[list(maze.goals)] = True
    change = NO_CHANGE if maze.change_step is None else maze.change_step
    i32 = lambda x: jnp.asarray(x, dtype=jnp.int32)  # noqa: E731
    return MazeEnv(jnp.asarray(walls), jnp.asarray(goal), i32(maze.start), i32(change),
                   i32(maze.height), i32(maze.width))


def walls_at(env: MazeEnv, t: jax.Array) -> jax.Array:
    """Wall mask (n_states,) in force at real step t (0-based)."""
    return env.walls[(t >= env.change_step).astype(jnp.int32)]


def env_step(env: MazeEnv, cell_: jax.Array, action: jax.Array, t: jax.Array
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One deterministic move at real step t: (cell reached, reward, episode done).

    The cell reached is the goal cell when done; the caller puts the agent back on the start.
    """
    move = jnp.asarray(_MOVES)[action]
    row = jnp.clip(cell_ // env.width + move[0], 0, env.height - 1)
    col = jnp.clip(cell_ % env.width + move[1], 0, env.width - 1)
    target = row * env.width + col
    nxt = jnp.where(walls_at(env, t)[target], cell_, target)
    done = env.goal[nxt]
    return nxt, done.astype(jnp.float32), done


@functools.lru_cache(maxsize=64)
def transition_table(maze: Maze, layout: int = 0) -> np.ndarray:
    """(n_states, N_ACTIONS) next cell of every move under one wall layout, via env_step (read-only)."""
    env = make_env(maze)
    t = jnp.where(layout == 0, 0, env.change_step).astype(jnp.int32)
    cells = jnp.arange(maze.n_states, dtype=jnp.int32)
    acts = jnp.arange(N_ACTIONS, dtype=jnp.int32)
    step = jax.vmap(jax.vmap(lambda c, a: env_step(env, c, a, t)[0], (None, 0)), (0, None))
    table = np.array(step(cells, acts))
    table.flags.writeable = False
    return table


def shortest_path_length(maze: Maze, layout: int = 0) -> int | None:
    """Fewest steps from the start to a goal under one wall layout (None if unreachable)."""
    table = transition_table(maze, layout)
    dist = {maze.start: 0}
    queue = deque([maze.start])
    goals = set(maze.goals)
    while queue:
        c = queue.popleft()
        if c in goals:
            return dist[c]
        for nxt in table[c]:
            if int(nxt) not in dist:
                dist[int(nxt)] = dist[c] + 1
                queue.append(int(nxt))
    return None


DYNA_MAZE_LAYOUT = """
.......#G
..#....#.
S.#....#.
..#......
.....#...
.........
"""

BLOCKING_MAZE_LAYOUT = """
........G
.........
.........
########.
.........
...S.....

........G
.........
.........
.########
.........
...S.....
"""

SHORTCUT_MAZE_LAYOUT = """
........G
.........
.........
.########
.........
...S.....

........G
.........
.........
.#######.
.........
...S.....
"""

DYNA_MAZE = parse_layout(DYNA_MAZE_LAYOUT, "dyna-maze")
BLOCKING_MAZE = parse_layout(BLOCKING_MAZE_LAYOUT, "blocking", change_step=1000)
SHORTCUT_MAZE = parse_layout(SHORTCUT_MAZE_LAYOUT, "shortcut", change_step=3000)
MAZES = {m.name: m for m in (DYNA_MAZE, BLOCKING_MAZE, SHORTCUT_MAZE)}


def get_maze(name: str) -> Maze:
    """A built-in maze by name: dyna-maze (Fig. 8.2), blocking (Ex. 8.2), shortcut (Ex. 8.3)."""
    try:
        return MAZES[name]
    except KeyError:
        raise ValueError(f"unknown maze {name!r}; allowed: {', '.join(MAZES)}") from None
