"""`jaxdyna report DIR...`: statistics over the runs of one or more sweep or run directories.

  jaxdyna report results/sweeps/mbpo-lr                      # writes results/sweeps/mbpo-lr/report/
  jaxdyna report host-a/sweep host-b/sweep --out report/     # merge directories (more seeds)
  jaxdyna report DIR --threshold inverted_pendulum=900 --reps 10000

Per env and per arm (algo + config label + swept setting values), over seeds:
  * IQM (25% trimmed mean) and mean of the final return (eval_return at the run's last
    evaluation) and of the normalised area under the curve (trapezoid of eval_return over
    env_steps divided by the env-step span: the curve's mean height), with 95% percentile
    stratified-bootstrap confidence intervals (rliable; envs are the strata, so within one env
    it is a bootstrap over seeds);
  * the probability of improvement P(X > Y) of the final return between every pair of arms;
  * env steps to a return threshold, first (first evaluation >= threshold) and sustained (from
    that evaluation on, every later one >= threshold): median over seeds and seeds reaching it;
  * sample-efficiency curves (IQM and 95% CI per evaluation) and performance profiles.

Diverged runs (a `diverged` flag, or a non-finite eval_return) are listed and left out.
Point estimates are rliable.metrics' aggregate_iqm / aggregate_mean / probability_of_improvement;
the bootstrap (rliable.library.get_interval_estimates) resamples identical but cheaper versions
of them (`iqm`, `poi_counts`), since it calls them thousands of times.

Input: DIR/metrics.csv (sweep: config, algo, env, <swept keys>, seed, env_steps, eval_return,
<diagnostics>, diverged; with DIR/sweep.json naming swept_keys) or a `jaxdyna run` directory
(metrics.csv: setting, seed, env_steps, eval_return, ...; config.yaml with algo and env).
Output (--out, default DIR/report): report.md, report.json, curves_<env>.png,
profiles_<env>.png and improvement_<env>.png.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import itertools
import json
import math
import re
import sys
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from jaxdyna.config import ConfigError
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.results import save_figure, steps_to_threshold

CONFIDENCE = 0.95
DEFAULT_REPS = 2000
DEFAULT_FRACTION = 0.9  # default threshold: 90% of the best arm's mean final return in that env
SWEEP_KEYS = ("config", "algo", "env")
RUN_KEYS = ("seed", "env_steps", "eval_return")
LEGACY_KEYS = ("setting", "seed", "env_steps", "eval_return")
_PAIR_SEP = "\t"  # joins arm labels into rliable's pair keys (labels never hold a tab)


# --------------------------------------------------------------------------------------------
# Loading

@dataclasses.dataclass(frozen=True)
class Run:
    """One run (one seed of one arm) with its evaluations, sorted by env_steps."""

    source: str  # the directory it was read from
    config: str
    algo: str
    env: str
    settings: tuple[tuple[str, str], ...]  # swept key -> value (as written in metrics.csv)
    seed: int
    steps: np.ndarray  # [evals] int64
    returns: np.ndarray  # [evals] float64
    diverged_at: int | None  # env_steps of the first row flagged diverged, else None
    rows: tuple  # the run's rows as written (to tell identical copies from conflicting ones)

    @property
    def key(self) -> tuple:
        return (self.config, self.algo, self.env, self.settings, self.seed)

    @property
    def arm(self) -> tuple:
        return (self.env, self.algo, self.config, self.settings)

    @property
    def excluded(self) -> str | None:
        """Why the run is left out of the statistics (None if it is used)."""
        bad = np.nonzero(~np.isfinite(self.returns))[0]
        nonfinite = f"non-finite eval_return from env step {int(self.steps[bad[0]])}" if bad.size else ""
        if self.diverged_at is not None:
            flagged = "" if self.diverged_at == self.steps[0] else f" from env step {self.diverged_at}"
            return f"diverged (flagged{flagged}{'; ' + nonfinite if nonfinite else ''})"
        return nonfinite or None

    def describe(self) -> str:
        return f"{arm_label(self.arm)} seed {self.seed}"


@dataclasses.dataclass
class RunTable:
    """Runs merged from several directories, and what was read from where."""

    runs: list[Run]
    sources: list[dict]  # per directory: dir, format, complete, swept_keys, runs, duplicates


def arm_label(arm: tuple) -> str:
    """'mbpo/inverted_pendulum [lr=0.001, batch=256]'; the algo is prefixed when the label lacks it."""
    _, algo, config, settings = arm
    base = config if algo and algo in config else f"{algo}:{config}"
    if settings:
        base += " [" + ", ".join(f"{k}={v}" for k, v in settings) + "]"
    return base.replace(_PAIR_SEP, " ")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a CSV file ({e})") from None
    if not rows or not rows[0]:
        raise ConfigError(f"{path}: empty (no header)")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise ConfigError(f"{path}: repeated column name in header")
    body = [r for r in rows[1:] if r]
    if not body:
        raise ConfigError(f"{path}: no rows after the header")
    for i, r in enumerate(rows[1:], start=2):
        if r and len(r) != len(header):
            raise ConfigError(f"{path}:{i}: {len(r)} fields, header has {len(header)}")
    return header, body


def _number(text: str, kind, where: str, column: str):
    try:
        x = float(text) if text.strip() != "" else math.nan
    except ValueError:
        raise ConfigError(f"{where}: column {column}: {text!r} is not a number") from None
    if kind is int:
        if not math.isfinite(x) or x != int(x):
            raise ConfigError(f"{where}: column {column}: {text!r} is not an integer")
        return int(x)
    return x


def _flag(text: str, where: str) -> bool:
    t = text.strip().lower()
    if t in ("", "0", "0.0", "false"):
        return False
    if t in ("1", "1.0", "true"):
        return True
    raise ConfigError(f"{where}: column diverged: {text!r} is not 0/1")


def _sweep_meta(d: Path, header: list[str]) -> tuple[list[str], bool | None, str]:
    """(swept keys, complete flag or None, format description) of a sweep directory."""
    meta_path = d / "sweep.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{meta_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict):
            raise ConfigError(f"{meta_path}: expected a JSON object")
        keys = meta.get("swept_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{meta_path}: swept_keys must be a list of column names")
        missing = [k for k in keys if k not in header]
        if missing:
            raise ConfigError(f"{meta_path}: swept key {missing[0]!r} is not a column of metrics.csv")
        complete = meta.get("complete")
        if complete is not None and not isinstance(complete, bool):
            raise ConfigError(f"{meta_path}: complete must be true or false")
        return keys, complete, "sweep"
    if not (header.index("env") < header.index("seed")):
        raise ConfigError(f"{d / 'metrics.csv'}: without sweep.json the swept keys must lie between env and seed")
    return header[header.index("env") + 1:header.index("seed")], None, "sweep (no sweep.json: swept keys inferred)"


def _legacy_meta(d: Path) -> tuple[str, str, list[dict] | None]:
    """(algo, env, settings list or None) from a `jaxdyna run` directory's config.yaml."""
    import yaml

    path = d / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: missing (a run directory's metrics.csv needs its config.yaml for algo and env)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict) or not cfg.get("algo") or not cfg.get("env"):
        raise ConfigError(f"{path}: needs algo and env keys")
    settings = cfg.get("settings")
    if settings is not None and not (isinstance(settings, list) and all(isinstance(s, dict) for s in settings)):
        raise ConfigError(f"{path}: settings must be a list of mappings")
    return str(cfg["algo"]), str(cfg["env"]), settings


def _load_dir(d: Path) -> tuple[list[Run], dict]:
    if not d.is_dir():
        raise ConfigError(f"{d}: no such directory")
    path = d / "metrics.csv"
    if not path.is_file():
        raise ConfigError(f"{d}: no metrics.csv (expected a sweep or `jaxdyna run` directory)")
    header, body = _read_csv(path)
    col = {h: i for i, h in enumerate(header)}
    source = str(d)
    if all(k in col for k in SWEEP_KEYS):
        missing = [k for k in RUN_KEYS if k not in col]
        if missing:
            raise ConfigError(f"{path}: missing column {missing[0]!r}")
        swept, complete, fmt = _sweep_meta(d, header)

        def ident(r: list[str]) -> tuple[str, str, str, tuple]:
            return (r[col["config"]], r[col["algo"]], r[col["env"]], tuple((k, r[col[k]]) for k in swept))
    elif header[:len(LEGACY_KEYS)] == list(LEGACY_KEYS):
        algo, env, settings = _legacy_meta(d)
        complete, fmt = None, "run"
        values = sorted({r[col["setting"]] for r in body})
        if settings and len(settings) > 1:
            names = sorted({k for s in settings for k in s})
            swept = [k for k in names if len({str(s.get(k)) for s in settings}) > 1]
        else:
            swept = ["setting"] if len(values) > 1 else []

        def ident(r: list[str]) -> tuple[str, str, str, tuple]:
            s = r[col["setting"]]
            if swept == ["setting"] or not swept:
                return (d.name, algo, env, tuple(("setting", s) for _ in swept))
            i = _number(s, int, str(path), "setting")
            if not 0 <= i < len(settings):
                raise ConfigError(f"{path}: setting {s} is not in config.yaml's settings (0..{len(settings) - 1})")
            return (d.name, algo, env, tuple((k, str(settings[i].get(k))) for k in swept))
    else:
        raise ConfigError(f"{path}: unknown layout; expected columns config, algo, env, ..., seed, env_steps, "
                          f"eval_return (sweep) or setting, seed, env_steps, eval_return (run)")

    grouped: dict[tuple, list[tuple[int, list[str]]]] = {}
    for line, r in enumerate(body, start=2):
        where = f"{path}:{line}"
        seed = _number(r[col["seed"]], int, where, "seed")
        grouped.setdefault((*ident(r), seed), []).append((line, r))
    runs = []
    for (config, algo, env, settings, seed), rows in grouped.items():
        steps = np.array([_number(r[col["env_steps"]], int, f"{path}:{l}", "env_steps") for l, r in rows], np.int64)
        returns = np.array([_number(r[col["eval_return"]], float, f"{path}:{l}", "eval_return") for l, r in rows])
        flags = [_flag(r[col["diverged"]], f"{path}:{l}") if "diverged" in col else False for l, r in rows]
        order = np.argsort(steps, kind="stable")
        steps, returns, flags = steps[order], returns[order], [flags[i] for i in order]
        dup = np.nonzero(np.diff(steps) == 0)[0]
        run = Run(source, config, algo, env, settings, seed, steps, returns, None, ())
        if dup.size:
            raise ConfigError(f"{path}: {run.describe()} has env_steps {int(steps[dup[0]])} twice")
        diverged_at = next((int(s) for s, f in zip(steps, flags) if f), None)
        canon = tuple(sorted(tuple(zip(header, r)) for _, r in rows))
        runs.append(dataclasses.replace(run, diverged_at=diverged_at, rows=canon))
    info = {"dir": source, "format": fmt, "complete": complete, "swept_keys": list(swept), "runs": len(runs),
            "duplicates": 0}
    return runs, info


def load_runs(dirs: Sequence[str | Path]) -> RunTable:
    """Read and merge the runs of several sweep / run directories.

    A run is identified by (config, algo, env, swept-key values, seed). The same run in two
    directories is kept once if both copies are identical and refused (ConfigError) otherwise.
    """
    if not dirs:
        raise ConfigError("dirs: give at least one directory")
    seen_dirs: dict[Path, str] = {}
    by_key: dict[tuple, Run] = {}
    sources = []
    for d in map(Path, dirs):
        real = d.resolve()
        if real in seen_dirs:
            raise ConfigError(f"{d}: given twice (also as {seen_dirs[real]})")
        seen_dirs[real] = str(d)
        runs, info = _load_dir(d)
        for run in runs:
            old = by_key.get(run.key)
            if old is None:
                by_key[run.key] = run
            elif old.rows == run.rows:
                info["duplicates"] += 1
            else:
                raise ConfigError(f"{run.describe()} is in both {old.source} and {run.source} with different "
                                  f"data; pass each run once")
        sources.append(info)
    return RunTable(list(by_key.values()), sources)


# --------------------------------------------------------------------------------------------
# Per-run quantities

def final_return(run: Run) -> float:
    return float(run.returns[-1])


def normalized_auc(steps: np.ndarray, returns: np.ndarray) -> float:
    """Trapezoid area of the return curve divided by its env-step span (its mean height)."""
    steps, returns = np.asarray(steps, float), np.asarray(returns, float)
    if steps.size == 1 or steps[-1] == steps[0]:
        return float(returns[-1])
    return float(np.trapezoid(returns, steps) / (steps[-1] - steps[0]))


def sustained_steps_to_threshold(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float:
    """First env step from which every later evaluation is >= `threshold` (NaN if none)."""
    below = np.nonzero(~(np.asarray(returns) >= threshold))[0]
    if below.size == 0:
        return float(steps[0])
    i = int(below[-1]) + 1
    return float(steps[i]) if i < len(steps) else math.nan


def censored_median(values: Sequence[float]) -> float:
    """Median over seeds with a seed that never reached the threshold (NaN) counted as never (inf)."""
    x = np.where(np.isnan(np.asarray(values, float)), np.inf, np.asarray(values, float))
    return float(np.median(x)) if x.size else math.nan


# --------------------------------------------------------------------------------------------
# Bootstrap (rliable)

@contextlib.contextmanager
def _seeded(seed: int, *key: Any) -> Iterator[None]:
    """rliable's bootstraps draw from numpy's global generator: seed it per estimate, then restore it.

    Each estimate gets its own seed from (seed, env, arm, metric), so adding an arm or an env does
    not change the other arms' intervals.
    """
    state = np.random.get_state()
    np.random.seed(zlib.crc32(repr((seed, *key)).encode()))
    try:
        yield
    finally:
        np.random.set_state(state)


def _interval(scores, func, reps: int, seed: int, *key) -> tuple[np.ndarray, np.ndarray]:
    """rliable point estimate and percentile CI [2, ...] of `func` over a [runs, tasks(, ...)] array
    (or a pair of them for probability of improvement)."""
    from rliable import library as rly

    with _seeded(seed, *key):
        pe, ci = rly.get_interval_estimates({"x": scores}, func, reps=reps, confidence_interval_size=CONFIDENCE)
    return np.asarray(pe["x"], float), np.asarray(ci["x"], float)


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Interquartile mean (25% trimmed mean) over all values (axis=None) or along `axis` 0.

    The same number as rliable.metrics.aggregate_iqm (scipy.stats.trim_mean(x, 0.25)); a plain
    sort and slice, about 20x cheaper per call, which is what a bootstrap of thousands of
    resamples spends its time on.
    """
    a = np.sort(np.ravel(scores) if axis is None else np.asarray(scores), axis=0)
    cut = int(0.25 * a.shape[0])
    return a[cut:a.shape[0] - cut].mean(axis=0)


def _iqm_and_mean(scores: np.ndarray) -> np.ndarray:
    """[IQM, mean] of a [runs, tasks] array (mean = rliable's mean of per-task means)."""
    return np.array([iqm(scores), np.mean(np.mean(scores, axis=0))])


def _iqm_per_eval(scores: np.ndarray) -> np.ndarray:
    """IQM at each evaluation of a [runs, 1, evals] array."""
    return iqm(scores[:, 0, :], axis=0)


def poi_counts(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y)/2 per task, averaged over tasks, by counting pairs.

    The same number as rliable.metrics.probability_of_improvement (Mann-Whitney U / (n_x n_y)),
    without computing the test's p-value, which makes the bootstrap about 10x cheaper.
    """
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    same = np.array([np.array_equal(x[:, t], y[:, t]) for t in range(x.shape[1])])
    return float(np.mean(np.where(same, 0.5, gt + 0.5 * eq)))


def _estimate(values: list[float], reps: int, seed: int, *key) -> dict:
    """IQM and mean with 95% CIs (CIs are null for fewer than 2 runs)."""
    x = np.asarray(values, float)[:, None]
    if x.shape[0] < 2:
        v = float(x[0, 0]) if x.size else math.nan
        return {"iqm": v, "iqm_ci": None, "mean": v, "mean_ci": None}
    from rliable import metrics

    _, ci = _interval(x, _iqm_and_mean, reps, seed, *key)
    return {"iqm": float(metrics.aggregate_iqm(x)), "iqm_ci": [float(ci[0, 0]), float(ci[1, 0])],
            "mean": float(metrics.aggregate_mean(x)), "mean_ci": [float(ci[0, 1]), float(ci[1, 1])]}


# --------------------------------------------------------------------------------------------
# Analysis

def parse_thresholds(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    """`--threshold VALUE` (every env) and/or `--threshold ENV=VALUE` (repeatable)."""
    default, per_env = None, {}
    for v in values or []:
        env, sep, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            x = math.nan
        if not math.isfinite(x):
            raise ConfigError(f"--threshold: {v!r} is not VALUE or ENV=VALUE with a finite number")
        if sep:
            if not env or env in per_env:
                raise ConfigError(f"--threshold: {v!r}: {'env given twice' if env else 'empty env name'}")
            per_env[env] = x
        elif default is not None:
            raise ConfigError(f"--threshold: two values for every env ({default:g} and {v}); use ENV=VALUE")
        else:
            default = x
    return default, per_env


def _common_grid(runs: list[Run]) -> np.ndarray:
    grid = runs[0].steps
    for r in runs[1:]:
        grid = np.intersect1d(grid, r.steps)
    return grid


def _value_key(v: str) -> tuple:
    """Numbers in numeric order, then text."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def _sort_key(arm: tuple) -> tuple:
    return (arm[1], arm[2], tuple((k, _value_key(v)) for k, v in arm[3]))


def analyze(table: RunTable, thresholds: Sequence[str] | None = None, reps: int = DEFAULT_REPS,
            seed: int = 0) -> dict:
    """All the report's numbers (report.json less provenance), plus the curves for the figures."""
    default_thr, env_thr = parse_thresholds(thresholds)
    envs = sorted({r.env for r in table.runs})
    unknown = sorted(set(env_thr) - set(envs))
    if unknown:
        raise ConfigError(f"--threshold: env {unknown[0]!r} is not in the runs (envs: {', '.join(envs)})")
    if reps < 10:
        raise ConfigError(f"--reps: must be at least 10, got {reps}")
    incomplete = {s["dir"] for s in table.sources if s["complete"] is False}
    out: dict[str, Any] = {"envs": {}}
    for env in envs:
        env_runs = [r for r in table.runs if r.env == env]
        arms = sorted({r.arm for r in env_runs}, key=_sort_key)
        used = {a: [r for r in env_runs if r.arm == a and r.excluded is None] for a in arms}
        for a in arms:
            used[a].sort(key=lambda r: r.seed)
        excluded = sorted((r for r in env_runs if r.excluded is not None), key=lambda r: (arm_label(r.arm), r.seed))
        means = {a: float(np.mean([final_return(r) for r in used[a]])) for a in arms if used[a]}
        if env in env_thr or default_thr is not None:
            thr = env_thr.get(env, default_thr)
            thr_source = f"--threshold {'%s=' % env if env in env_thr else ''}{thr:g}"
        elif means:
            best = max(means, key=means.get)
            thr = means[best] - (1 - DEFAULT_FRACTION) * abs(means[best])
            thr_source = (f"default: {DEFAULT_FRACTION:.0%} of {means[best]:.4g}, the best arm-mean final "
                          f"return, by {arm_label(best)}")
        else:
            thr, thr_source = math.nan, "none: every run was excluded"
        arm_rows, curves, finals = [], [], {}
        for a in arms:
            runs = used[a]
            label = arm_label(a)
            row: dict[str, Any] = {"label": label, "algo": a[1], "config": a[2], "settings": dict(a[3]),
                                   "runs": len(runs), "seeds": [r.seed for r in runs],
                                   "excluded_runs": sum(r.arm == a for r in excluded),
                                   "from_incomplete_sweep": any(r.source in incomplete for r in env_runs if r.arm == a),
                                   "dirs": sorted({r.source for r in runs})}
            if runs:
                f = [final_return(r) for r in runs]
                auc = [normalized_auc(r.steps, r.returns) for r in runs]
                finals[label] = np.asarray(f)
                row["final_env_steps"] = sorted({int(r.steps[-1]) for r in runs})
                row["final_return"] = {**_estimate(f, reps, seed, env, label, "final"),
                                       "per_run": dict(zip(map(str, row["seeds"]), f))}
                row["auc"] = {**_estimate(auc, reps, seed, env, label, "auc"),
                              "per_run": dict(zip(map(str, row["seeds"]), auc))}
                stt = {}
                for kind, fn in (("first", steps_to_threshold), ("sustained", sustained_steps_to_threshold)):
                    per = [fn(r.steps, r.returns, thr) for r in runs]
                    stt[kind] = {"median": censored_median(per), "reached": int(np.sum(~np.isnan(per))),
                                 "n": len(per), "per_run": dict(zip(map(str, row["seeds"]), per))}
                row["steps_to_threshold"] = stt
                grid = _common_grid(runs)
                if grid.size:
                    sc = np.stack([r.returns[np.isin(r.steps, grid)] for r in runs])[:, None, :]
                    if len(runs) >= 2:
                        pe, ci = _interval(sc, _iqm_per_eval, reps, seed, env, label, "curve")
                    else:
                        pe, ci = sc[0, 0], np.stack([sc[0, 0], sc[0, 0]])
                    curves.append((label, grid, pe, ci, len(runs)))
                    row["curve"] = {"env_steps": grid.tolist(), "iqm": pe.tolist(),
                                    "ci_low": ci[0].tolist(), "ci_high": ci[1].tolist()}
            arm_rows.append(row)
        poi = _improvement(arms, used, env, reps, seed)
        ends = sorted({int(r.steps[-1]) for a in arms for r in used[a]})
        out["envs"][env] = {
            "threshold": {"value": thr, "source": thr_source},
            "arms": arm_rows,
            "probability_of_improvement": poi,
            "runs_used": sum(len(v) for v in used.values()),
            "excluded": [{"arm": arm_label(r.arm), "seed": r.seed, "dir": r.source, "reason": r.excluded}
                         for r in excluded],
            "final_env_steps": ends,
            "_curves": curves, "_finals": finals,
        }
    return out


def _improvement(arms: list[tuple], used: dict, env: str, reps: int, seed: int) -> list[dict]:
    """P(X > Y) of the final return for every pair of arms with runs; X is the arm with the higher mean."""
    from rliable import metrics

    have = [a for a in arms if used[a]]
    mean = {a: np.mean([final_return(r) for r in used[a]]) for a in have}
    out = []
    for i, a in enumerate(have):
        for b in have[i + 1:]:
            x, y = (a, b) if mean[a] >= mean[b] else (b, a)
            sx = np.array([final_return(r) for r in used[x]])[:, None]
            sy = np.array([final_return(r) for r in used[y]])[:, None]
            p = float(metrics.probability_of_improvement(sx, sy))
            ci = None
            if len(sx) >= 2 and len(sy) >= 2:
                _, c = _interval((sx, sy), poi_counts, reps, seed, env, arm_label(x), arm_label(y), "poi")
                ci = [float(c[0]), float(c[1])] if c.ndim == 1 else [float(c[0, 0]), float(c[1, 0])]
            out.append({"x": arm_label(x), "y": arm_label(y), "p": p, "ci": ci, "n_x": len(sx), "n_y": len(sy)})
    return out


# --------------------------------------------------------------------------------------------
# Figures

def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, footer: str) -> None:
    _pyplot()                                   # the Agg backend before pyplot is used
    save_figure(fig, path, footer)


def _colors(labels: list[str]) -> dict[str, Any]:
    cycle = _pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {l: cycle[i % len(cycle)] for i, l in enumerate(labels)}


def plot_iqm_curves(path: Path, curves: list, title: str, footer: str, threshold: float | None) -> None:
    """IQM of eval_return vs env steps with its 95% bootstrap CI band, one line per arm."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=130)
    colors = _colors([c[0] for c in curves])
    for label, steps, iqm, ci, n in curves:
        ax.plot(steps, iqm, marker="o", markersize=2.5, color=colors[label], label=f"{label} (n={n})")
        if n > 1:
            ax.fill_between(steps, ci[0], ci[1], color=colors[label], alpha=0.2, linewidth=0)
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="gray", linestyle="--", linewidth=0.8, label=f"threshold {threshold:.4g}")
    if curves:
        ax.set_xlim(0, max(float(np.max(c[1])) for c in curves) * 1.02)
    ax.set_xlabel("env steps")
    ax.set_ylabel(f"eval return (IQM over seeds, {CONFIDENCE:.0%} CI)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    _save(fig, path, footer)


def design_maps(arm_rows: list[dict]) -> list[dict]:
    """Per (algo, config) swept over at least two keys: its arms laid out as a grid for a heat map.

    Keys with more values go first; rows are the product of keys 0, 2, ..., columns of keys 1, 3, ...
    Each map holds the final-return IQM and the median sustained steps to threshold per cell
    (NaN where no arm has that combination, inf where fewer than half the seeds reach it).
    """
    maps = []
    by_config: dict[tuple, list[dict]] = {}
    for row in arm_rows:
        if row.get("final_return") is not None and row["settings"]:
            by_config.setdefault((row["algo"], row["config"]), []).append(row)
    for (algo, config), rows in by_config.items():
        keys = sorted({k for r in rows for k in r["settings"]})
        values = {k: sorted({r["settings"].get(k, "") for r in rows}, key=_value_key) for k in keys}
        keys = [k for k in sorted(keys, key=lambda k: -len(values[k])) if len(values[k]) > 1]
        if len(keys) < 2:
            continue
        row_keys, col_keys = keys[0::2], keys[1::2]
        combos = lambda ks: list(itertools.product(*(values[k] for k in ks)))
        rcombos, ccombos = combos(row_keys), combos(col_keys)
        final = np.full((len(rcombos), len(ccombos)), np.nan)
        steps = np.full_like(final, np.nan)
        for r in rows:
            i = rcombos.index(tuple(r["settings"].get(k, "") for k in row_keys))
            j = ccombos.index(tuple(r["settings"].get(k, "") for k in col_keys))
            final[i, j] = r["final_return"]["iqm"]
            steps[i, j] = r["steps_to_threshold"]["sustained"]["median"]
        label = lambda ks, c: ", ".join(f"{k}={v}" for k, v in zip(ks, c))
        maps.append({"title": arm_label(("", algo, config, ())), "row_keys": row_keys,
                     "col_keys": col_keys, "rows": [label(row_keys, c) for c in rcombos],
                     "cols": [label(col_keys, c) for c in ccombos], "final_iqm": final, "steps": steps})
    return maps


def plot_design_map(path: Path, m: dict, title: str, footer: str, max_steps: float) -> None:
    """Two heat maps side by side: final-return IQM and median sustained steps to threshold."""
    plt = _pyplot()
    nr, nc = m["final_iqm"].shape
    fig, axes = plt.subplots(1, 2, figsize=(4.2 + 2.6 * nc, 1.9 + 0.55 * nr), dpi=130)
    steps = np.where(np.isinf(m["steps"]), max_steps * 1.05, m["steps"])
    panels = ((m["final_iqm"], "final return (IQM over seeds)", "viridis", lambda v: f"{v:.0f}"),
              (steps, "env steps to threshold (median, sustained)", "viridis_r",
               lambda v: "never" if v > max_steps else f"{v:,.0f}"))
    for ax, (z, name, cmap, fmt) in zip(axes, panels):
        im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, aspect="auto")
        for i in range(nr):
            for j in range(nc):
                if np.isfinite(z[i, j]):
                    ax.text(j, i, fmt(z[i, j]), ha="center", va="center", fontsize=7, color="white",
                            path_effects=[_stroke()])
        ax.set_xticks(range(nc), m["cols"], rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(nr), m["rows"] if ax is axes[0] else [""] * nr, fontsize=7)
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path, footer)


def _stroke():
    from matplotlib import patheffects

    return patheffects.withStroke(linewidth=1.5, foreground="black")


def plot_profiles(path: Path, finals: dict[str, np.ndarray], title: str, footer: str, reps: int, seed: int,
                  env: str) -> None:
    """Performance profiles of the final return: fraction of runs above tau, with 95% CIs (rliable)."""
    plt = _pyplot()
    from rliable import library as rly
    from rliable import plot_utils

    allv = np.concatenate(list(finals.values()))
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.05 * (hi - lo) if hi > lo else max(1.0, abs(hi) * 0.05)
    taus = np.linspace(lo - pad, hi + pad, 101)
    profiles, cis = {}, {}
    for label, v in finals.items():
        with _seeded(seed, env, label, "profile"):
            p, c = rly.create_performance_profile(
                {label: v[:, None]}, taus, reps=reps, confidence_interval_size=CONFIDENCE,
                custom_profile_func=lambda s, t: (s.reshape(-1)[:, None] > np.asarray(t)[None, :]).mean(axis=0))
        profiles[label], cis[label] = p[label], c[label]
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=130)
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=cis, ax=ax, colors=_colors(list(finals)), alpha=0.2,
        xlabel=r"final eval return ($\tau$)", ylabel=r"fraction of runs with final return $> \tau$",
        labelsize=9, ticklabelsize=8)
    for line, (label, v) in zip(ax.get_lines(), finals.items()):
        line.set_label(f"{label} (n={len(v)})")
    ax.legend(loc="best", fontsize=7)
    ax.set_title(title, fontsize=9)
    _save(fig, path, footer)


def plot_improvement(path: Path, poi: list[dict], title: str, footer: str) -> bool:
    """P(X > Y) with 95% CIs per pair of arms (rliable); False (no file) if no pair has a CI."""
    pairs = [p for p in poi if p["ci"] is not None]
    if not pairs:
        return False
    plt = _pyplot()
    from rliable import plot_utils

    probs = {f"{p['x']}{_PAIR_SEP}{p['y']}": p["p"] for p in pairs}
    cis = {f"{p['x']}{_PAIR_SEP}{p['y']}": np.array(p["ci"]) for p in pairs}
    fig, ax = plt.subplots(figsize=(7.5, 1.4 + 0.4 * len(pairs)), dpi=130)
    plot_utils.plot_probability_of_improvement(
        probs, cis, pair_separator=_PAIR_SEP, ax=ax, xlabel="P(X > Y), final return",
        left_ylabel="X", right_ylabel="Y", labelsize=8, ticklabelsize=7, ylabel_x_coordinate=0.05)
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=9)
    _save(fig, path, footer)
    return True


# --------------------------------------------------------------------------------------------
# Writing

def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats become null (never reached / undefined), numpy scalars plain."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items() if not str(k).startswith("_")}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _est(e: dict, stat: str) -> str:
    ci = e[f"{stat}_ci"]
    return _fmt(e[stat]) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else " (n<2, no CI)")


def _steps(s: dict) -> str:
    m = s["median"]  # null in the JSON: never (fewer than half the seeds reach the threshold)
    text = "never" if m is None or not math.isfinite(m) else str(int(m)) if m == int(m) else f"{m:.1f}"
    return f"{text} ({s['reached']}/{s['n']})"


def _cell(text: str) -> str:
    return str(text).replace("|", r"\|")


def render_markdown(report: dict) -> str:
    prov = report["provenance"]
    bs = report["bootstrap"]
    L = ["# jaxdyna report", ""]
    L.append("Inputs:")
    L.append("")
    for s in report["inputs"]:
        flag = " **(incomplete sweep: sweep.json has complete=false)**" if s["complete"] is False else ""
        dup = f", {s['duplicates']} identical duplicate run(s) counted once" if s["duplicates"] else ""
        L.append(f"- `{s['dir']}`: {s['format']}, {s['runs']} runs{dup}{flag}")
    if report["incomplete"]:
        L += ["", f"**Warning:** {len(report['incomplete'])} input sweep(s) are incomplete; arms marked † have "
                  "runs from them and may lack seeds or evaluations."]
    L += ["",
          f"Statistics over seeds per env and arm, diverged runs left out. IQM = 25% trimmed mean. "
          f"Final = eval_return at a run's last evaluation. AUC = trapezoid of eval_return over env_steps divided "
          f"by the env-step span (the curve's mean height). [lo, hi] = {bs['confidence']:.0%} percentile "
          f"stratified-bootstrap CI ({bs['library']}, {bs['reps']} resamples, seed {bs['seed']}; envs are the "
          f"strata, so within one env the bootstrap is over seeds). Steps to threshold: first = first evaluation "
          f">= threshold; sustained = the evaluation from which every later one is >= threshold; median over all "
          f"seeds, a seed that never reaches it counted as never (so 'never' when fewer than half reach it); "
          f"(reached/n).", ""]
    for env, e in report["envs"].items():
        thr = e["threshold"]
        L += [f"## {env}", "",
              f"Threshold: {_fmt(thr['value'])} ({thr['source']}).",
              f"Runs used: {e['runs_used']}; excluded (diverged or non-finite return): {len(e['excluded'])}.", ""]
        if len(e["final_env_steps"]) > 1:
            L += [f"**Note:** runs end at different env steps ({', '.join(map(str, e['final_env_steps']))}); final "
                  f"returns and AUCs are then not measured at the same budget.", ""]
        L += ["| arm | runs | final IQM [95% CI] | final mean [95% CI] | AUC IQM [95% CI] | "
              "steps to threshold, first: median (reached/n) | sustained: median (reached/n) |",
              "|---|---:|---|---|---|---|---|"]
        for a in e["arms"]:
            name = _cell(a["label"]) + (" †" if a["from_incomplete_sweep"] else "")
            if not a["runs"]:
                L.append(f"| {name} | 0 | — | — | — | — | — |")
                continue
            st = a["steps_to_threshold"]
            L.append(f"| {name} | {a['runs']} | {_est(a['final_return'], 'iqm')} | {_est(a['final_return'], 'mean')} "
                     f"| {_est(a['auc'], 'iqm')} | {_steps(st['first'])} | {_steps(st['sustained'])} |")
        if e["probability_of_improvement"]:
            L += ["", "Probability of improvement of the final return, P(X > Y) (X: the arm with the higher mean; "
                      "ties count half):", "", "| X | Y | P(X > Y) [95% CI] |", "|---|---|---|"]
            for p in e["probability_of_improvement"]:
                ci = f" [{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]" if p["ci"] else " (n<2, no CI)"
                L.append(f"| {_cell(p['x'])} | {_cell(p['y'])} | {p['p']:.2f}{ci} |")
        figs = ", ".join(f"[{f}]({f})" for f in e["figures"])
        if figs:
            L += ["", f"Figures: {figs}"]
        if e["excluded"]:
            L += ["", f"Excluded runs ({len(e['excluded'])}):", "", "| arm | seed | dir | reason |", "|---|---:|---|---|"]
            for x in e["excluded"]:
                L.append(f"| {_cell(x['arm'])} | {x['seed']} | `{x['dir']}` | {x['reason']} |")
        L.append("")
    L += ["## Provenance", "",
          f"- command: `{prov['command']}`",
          f"- git revision: {prov['git_revision']}",
          f"- device: {prov['device']}",
          f"- versions: {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}"]
    if prov.get("settings"):
        L.append(f"- compiler settings: {', '.join(f'{k}={v}' for k, v in prov['settings'].items())}")
    L.append("")
    return "\n".join(L)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("rliable", "arch", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_report(out: Path, table: RunTable, analysis: dict, command: str, reps: int, seed: int) -> dict:
    """Write report.md, report.json and the figures into `out`; return the report (as in report.json)."""
    prov = provenance(command)
    prov["versions"].update(_versions())
    footer = f"{command} | {prov['git_revision']} | {prov['device']}"
    for env, e in analysis["envs"].items():
        e["figures"] = []
        name = _safe(env)
        if e["_curves"]:
            plot_iqm_curves(out / f"curves_{name}.png", e["_curves"], f"{env}: IQM eval return over seeds", footer,
                            e["threshold"]["value"])
            e["figures"].append(f"curves_{name}.png")
        if e["_finals"]:
            plot_profiles(out / f"profiles_{name}.png", e["_finals"], f"{env}: performance profiles (final return)",
                          footer, reps, seed, env)
            e["figures"].append(f"profiles_{name}.png")
        if plot_improvement(out / f"improvement_{name}.png", e["probability_of_improvement"],
                            f"{env}: probability of improvement (final return)", footer):
            e["figures"].append(f"improvement_{name}.png")
        for k, m in enumerate(design_maps(e["arms"])):
            fname = f"design_{name}_{_safe(m['title'])}.png"
            plot_design_map(out / fname, m, f"{env}: {m['title']} over {', '.join(m['row_keys'] + m['col_keys'])}",
                            footer, max(e["final_env_steps"] or [1]))
            e["figures"].append(fname)
    report = {
        "inputs": table.sources,
        "incomplete": [s["dir"] for s in table.sources if s["complete"] is False],
        "bootstrap": {"reps": reps, "seed": seed, "confidence": CONFIDENCE, "method": "percentile",
                      "library": f"rliable {_versions().get('rliable', '?')}"},
        "envs": analysis["envs"],
        "provenance": prov,
    }
    report = _clean(report)
    write_json(out / "report.json", report)
    write_text(out / "report.md", render_markdown(report))
    return report


def cmd_report(args) -> int:
    dirs = list(args.dirs)
    out = Path(args.out) if args.out else Path(dirs[0]) / "report"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    reps = int(getattr(args, "reps", DEFAULT_REPS))
    seed = int(getattr(args, "seed", 0))
    if reps < 10:
        raise ConfigError(f"--reps: must be at least 10, got {reps}")
    parse_thresholds(args.threshold)  # bad values fail before anything is read
    table = load_runs(dirs)
    analysis = analyze(table, args.threshold, reps=reps, seed=seed)
    command = getattr(args, "command_line", None) or "jaxdyna report " + " ".join(map(str, dirs))
    report = write_report(out, table, analysis, command, reps, seed)
    n_ex = sum(len(e["excluded"]) for e in report["envs"].values())
    n_arms = sum(len(e["arms"]) for e in report["envs"].values())
    warn = f"; {len(report['incomplete'])} incomplete sweep(s)" if report["incomplete"] else ""
    print(f"jaxdyna: report on {len(table.runs)} runs ({n_ex} excluded), {n_arms} arms, {len(report['envs'])} "
          f"env(s){warn}; wrote {out / 'report.md'}", file=sys.stderr)
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `report` subcommand on an argparse subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "report", help="statistics (IQM, bootstrap CIs, probability of improvement, steps to threshold) "
                       "over sweep or run directories",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", metavar="DIR", help="sweep or run directories (merged)")
    p.add_argument("--out", help="output directory (default: the first DIR's report/)")
    p.add_argument("--threshold", action="append", metavar="[ENV=]VALUE",
                   help="return threshold for steps-to-threshold, for every env or one (repeatable; default: "
                        f"{DEFAULT_FRACTION * 100:.0f}%% of the best arm-mean final return in each env)")
    p.add_argument("--reps", type=int, default=DEFAULT_REPS,
                   help=f"bootstrap resamples (default {DEFAULT_REPS})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_report)
    return p
