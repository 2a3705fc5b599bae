"""Sweep files: which configs, seeds and settings to run, grouped into compiled programs.

A sweep file is one YAML mapping:

    configs: [configs/mbpo/inverted_pendulum.yaml, sac/inverted_pendulum]  # files, algo/env names, algos,
                                    # or inline mappings such as {algo: sac, env: hopper, name: sac-hopper}
                                    # or {config: mbpo/hopper, name: mbpo-small, model_hidden: [64, 64]}
    seeds: 5                        # or a list of seeds
    set: {total_steps: 5000}        # overrides for every run
    grid: {real_ratio: [0.05, 0.5], model_retain: [1, 4]}   # full product; traced or static keys
    chunk_evals: 4                  # optional: evaluation periods per checkpointed chunk
                                    # (default: fewest periods for <= 10 chunks; 1 if that is the whole run)

Every (config, grid point) is resolved with `config.resolve`; runs are grouped by their static
`Config`, so each group's (traced settings x seeds) is ONE compiled program, and a grid over a
static key makes one group per value. `plan_sweep` checks everything (unknown keys, bad values,
memory) before anything runs or is written.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxdyna import config as C
from jaxdyna.config import Config, ConfigError, HParams

SWEEP_KEYS = ("configs", "seeds", "set", "grid", "chunk_evals", "name")
REPO_CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class Setting:
    """One (config, grid point): a row of traced hyperparameters inside a group."""
    label: str                    # the config's name as the sweep file gave it
    values: dict[str, Any]        # the grid point (swept key -> value)
    hp: HParams


@dataclass
class Group:
    """Runs that share one static Config: settings x seeds, one compiled program."""
    index: int
    cfg: Config
    settings: list[Setting]
    seeds: list[int]
    chunk_evals: int
    state_bytes: int = 0          # one run's training state
    parts: int = 1                # the run axis split into this many programs to fit in memory

    @property
    def runs(self) -> int:
        return len(self.settings) * len(self.seeds)

    @property
    def name(self) -> str:
        return f"g{self.index:02d}"

    def run_table(self) -> list[tuple[Setting, int]]:
        """(setting, seed) per run, setting-major: run i = settings[i // seeds] x seeds[i % seeds]."""
        return [(s, seed) for s in self.settings for seed in self.seeds]


@dataclass
class Plan:
    groups: list[Group]
    swept_keys: list[str]
    source: dict[str, Any]        # the sweep file as parsed
    digest: str                   # hash of the normalised sweep file and its configs' contents
    name: str = "sweep"
    notes: list[str] = field(default_factory=list)
    side_by_side: int | None = None   # at most this many groups at once (memory); None: no limit

    @property
    def runs(self) -> int:
        return sum(g.runs for g in self.groups)


def suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _config_source(name: Any, base: Path) -> tuple[str, dict[str, Any]]:
    """(label, values) of one entry of `configs`: a YAML file, a shipped `algo/env`, an algo, or an
    inline mapping of config keys (labelled by its optional `name`, else by its algo)."""
    if isinstance(name, dict):
        values = dict(name)
        label, base_name = values.pop("name", None), values.pop("config", None)
        if base_name is not None:                       # {config: mbpo/hopper, <overrides>}
            base_label, base_values = _config_source(base_name, base)
            _check_keys(f"configs: {label or base_label}", values)
            return label or base_label, {**base_values, **values}
        label = label or values.get("algo")
        if not isinstance(label, str) or not label:
            raise ConfigError(f"configs: an inline config needs an 'algo', a 'config' to start from, or a 'name'; "
                              f"got {name!r}")
        _check_keys(f"configs: {label}", values)
        return label, values
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"configs: each entry must be a file path, an algo/env name, an algo or a mapping of "
                          f"config keys, got {name!r}")
    if name in C.ALGOS:
        return name, {"algo": name}
    candidates = [Path(name), base / name]
    if "/" in name and not name.endswith((".yaml", ".yml")):
        candidates += [REPO_CONFIGS / f"{name}.yaml", Path("configs") / f"{name}.yaml"]
    for path in candidates:
        if path.is_file():
            label = name[:-5] if name.endswith(".yaml") else name
            label = label.removeprefix("configs/")
            return label, C.load_yaml(path)
    raise ConfigError(f"configs: no config {name!r} (a YAML file, a shipped algo/env such as "
                      f"mbpo/inverted_pendulum, or one of {', '.join(C.ALGOS)})")


def _seeds(value: Any) -> list[int]:
    if isinstance(value, bool):
        raise ConfigError(f"seeds: expected a positive integer or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"seeds: must be a positive integer, got {value}")
        return list(range(value))
    if isinstance(value, list) and value:
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
            raise ConfigError(f"seeds: a list of seeds must hold integers >= 0, got {value!r}")
        if len(set(value)) != len(value):
            raise ConfigError(f"seeds: repeated seed in {value!r}")
        return list(value)
    raise ConfigError(f"seeds: expected a positive integer or a non-empty list of seeds, got {value!r}")


def _check_keys(where: str, keys) -> None:
    for k in keys:
        if not isinstance(k, str) or (k not in C.CONFIG_FIELDS and k not in C.HPARAM_FIELDS):
            raise ConfigError(f"{where}: unknown key {k!r}{suggest(str(k), C.ALL_KEYS)}")


def load_sweep(path: str | Path) -> dict[str, Any]:
    data = C.load_yaml(path)
    if not data:
        raise ConfigError(f"sweep: {path} is empty; it needs at least 'configs' (and usually 'seeds')")
    for k in data:
        if k not in SWEEP_KEYS:
            raise ConfigError(f"sweep: unknown key {k!r}{suggest(str(k), SWEEP_KEYS)}; allowed: {', '.join(SWEEP_KEYS)}")
    return data


def default_chunk_evals(num_evals: int, max_chunks: int = 10) -> int:
    """The fewest evaluation periods per chunk that divide the run into at most `max_chunks` chunks,
    or one period per chunk where that would be the whole run (a prime number of periods above
    `max_chunks`, e.g. 19): a long run still checkpoints, shows progress and can stop at a
    `--time-limit` on the way."""
    for d in range(1, num_evals + 1):
        if num_evals % d == 0 and num_evals // d <= max_chunks:
            return 1 if d == num_evals > 1 else d
    return num_evals


def plan_sweep(data: dict[str, Any], base: Path = Path("."), seeds_override: list[int] | None = None) -> Plan:
    """Resolve every run of a parsed sweep file and group them by static Config."""
    configs = data.get("configs")
    if isinstance(configs, str):
        configs = [configs]
    if not isinstance(configs, list) or not configs:
        raise ConfigError("configs: expected a non-empty list of config files or algo/env names")
    seeds = seeds_override if seeds_override is not None else _seeds(data.get("seeds", 1))
    common = data.get("set") or {}
    if not isinstance(common, dict):
        raise ConfigError(f"set: expected a mapping of key: value, got {type(common).__name__}")
    _check_keys("set", common)
    grid = data.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"grid: expected a mapping of key: [values], got {type(grid).__name__}")
    _check_keys("grid", grid)
    for k, v in grid.items():
        if not isinstance(v, list):
            raise ConfigError(f"grid: {k} must be a list of values, got {v!r}")
        if not v:
            raise ConfigError(f"grid: {k} is an empty list; give at least one value")
    chunk = data.get("chunk_evals")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0):
        raise ConfigError(f"chunk_evals: must be a positive integer, got {chunk!r}")

    sources = [_config_source(c, base) for c in configs]
    labels = [lab for lab, _ in sources]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"configs: listed twice: {sorted({l for l in labels if labels.count(l) > 1})}")
    keys = list(grid)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]

    groups: dict[Config, Group] = {}
    for label, values in sources:
        for point in points:
            try:
                cfg, hp = C.resolve({**values, **common, **point})
            except ConfigError as e:
                where = f"{label}" + (f" with {point}" if point else "")
                raise ConfigError(f"{where}: {e}") from None
            if cfg not in groups:
                n = cfg.num_evals
                if chunk is not None and n % chunk:
                    raise ConfigError(f"chunk_evals: must divide the number of evaluations ({n} for {label}), "
                                      f"got {chunk}")
                groups[cfg] = Group(index=len(groups), cfg=cfg, settings=[], seeds=list(seeds),
                                    chunk_evals=chunk or default_chunk_evals(n))
            groups[cfg].settings.append(Setting(label=label, values=dict(point), hp=hp))

    contents = {lab: vals for lab, vals in sources}
    norm = json.dumps({"sweep": {**data, "seeds": seeds}, "configs": contents}, sort_keys=True, default=str)
    return Plan(groups=list(groups.values()), swept_keys=keys, source=data,
                digest=hashlib.sha256(norm.encode()).hexdigest()[:16], name=str(data.get("name", "sweep")))


def fit_memory(plan: Plan, available: int | None, devices: int = 1, shared: bool = True) -> None:
    """Measure each group's state and split groups too big for memory into parts (or refuse); with
    `shared` memory (CPU devices) also how many groups fit side by side."""
    from jaxdyna.sweep import state_bytes

    for g in plan.groups:
        g.state_bytes = state_bytes(g.cfg, g.settings[0].hp)
        if available is None:
            continue
        per_run = 3 * g.state_bytes          # the state, its update and temporaries
        fit = available // per_run
        if fit < 1:
            raise ConfigError(f"{g.settings[0].label}: one run needs about {per_run / 2**30:.1f} GiB (state "
                              f"{g.state_bytes / 2**30:.2f} GiB x3) but {available / 2**30:.1f} GiB is available; "
                              "lower buffer_size or rollout_batch_size")
        per_part = max(devices, (fit // devices) * devices)
        g.parts = math.ceil(g.runs / per_part)
    if not shared:        # accelerators: parts are sized for every device, so groups go one at a time
        plan.side_by_side = 1
    elif available is not None:                 # groups side by side share the host's memory
        need = sorted((3 * g.state_bytes * math.ceil(g.runs / g.parts) for g in plan.groups), reverse=True)
        plan.side_by_side = max(1, sum(1 for total in itertools.accumulate(need) if total <= available))


def describe(plan: Plan) -> str:
    """The plan printed before a sweep starts."""
    lines = [f"sweep {plan.name!r}: {plan.runs} runs in {len(plan.groups)} group(s) "
             f"(one compiled program per group and part); swept: {', '.join(plan.swept_keys) or 'nothing'}"]
    for g in plan.groups:
        labels = sorted({s.label for s in g.settings})
        static = ""
        if len(plan.groups) > 1:
            static = ", ".join(f"{k}={g.settings[0].values[k]}" for k in plan.swept_keys
                               if k in C.CONFIG_FIELDS and k in g.settings[0].values)
        mem = f", state {g.state_bytes * g.runs / 2**20:,.0f} MiB" if g.state_bytes else ""
        parts = f", split into {g.parts} parts to fit in memory" if g.parts > 1 else ""
        lines.append(f"  {g.name}: {g.cfg.algo} on {g.cfg.env} [{', '.join(labels)}]{' ' + static if static else ''}: "
                     f"{len(g.settings)} setting(s) x {len(g.seeds)} seed(s) = {g.runs} runs, "
                     f"{g.cfg.num_evals} evaluations in chunks of {g.chunk_evals}{mem}{parts}")
    return "\n".join(lines)
