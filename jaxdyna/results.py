"""Writing a run's outputs: resolved config, metrics.csv, summary.json and a return plot.

Every file is written atomically (temp file + rename), so an interrupted or failed run never
leaves a half-written file, and files from an earlier run are replaced only by complete ones.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from jaxdyna.io import atomic_path, write_json, write_text

LEADING = ("setting", "seed", "env_steps", "eval_return")


def metrics_rows(metrics: dict[str, np.ndarray], seeds: np.ndarray, setting: np.ndarray) -> list[dict]:
    """One row per run per evaluation: setting, seed, env_steps, eval_return, then the rest."""
    names = [k for k in LEADING[2:] if k in metrics] + sorted(k for k in metrics if k not in LEADING)
    runs, evals = metrics["eval_return"].shape[:2]
    rows = []
    for r in range(runs):
        for e in range(evals):
            row = {"setting": int(setting[r]), "seed": int(seeds[r])}
            for k in names:
                v = metrics[k][r, e]
                row[k] = int(v) if k == "env_steps" else (float(v) if np.ndim(v) == 0 else " ".join(map(str, np.ravel(v))))
            rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def steps_to_threshold(steps: np.ndarray, returns: np.ndarray, threshold: float) -> float:
    """First env step at which the return reaches `threshold` (NaN if never)."""
    hit = np.nonzero(returns >= threshold)[0]
    return float(steps[hit[0]]) if hit.size else math.nan


def plot_curves(path: Path, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str,
                footer: str = "", *, hlines: Sequence[tuple[float, str]] = (),
                vlines: Sequence[tuple[float, str]] = (), xlabel: str = "env steps",
                ylabel: str = "eval return", ylim: tuple[float, float] | None = None) -> None:
    """Return vs env steps: mean line and an interquartile (25-75%) band across seeds, one line per label.

    `curves` holds (label, steps [evals], returns [seeds, evals]). `hlines` / `vlines` are
    (position, label) reference lines (a return threshold, the end of warm-up). `footer` (the
    provenance) may span several lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=130)
    for label, steps, returns in curves:
        returns = np.asarray(returns, float)
        mean = np.nanmean(returns, axis=0)
        n = returns.shape[0]
        line, = ax.plot(steps, mean, marker="o", markersize=2.5, label=f"{label} (n={n})")
        if n > 1:
            lo, hi = np.nanpercentile(returns, [25, 75], axis=0)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    for y, label in hlines:
        ax.axhline(y, color="gray", linestyle="--", linewidth=0.8, label=label)
    for x, label in vlines:
        ax.axvline(x, color="gray", linestyle=":", linewidth=0.8, label=label)
    if curves:
        ax.set_xlim(0, max(float(np.max(c[1])) for c in curves) * 1.02)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    save_figure(fig, path, footer)


def save_figure(fig, path: Path, footer: str = "") -> None:
    """The provenance footer in small gray type, then an atomic PNG write; closes the figure."""
    import matplotlib.pyplot as plt

    lines = footer.count("\n") + 1 if footer else 0
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=5.5, color="gray")
    fig.tight_layout(rect=(0, 0.03 * lines, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_run(out: Path, config: dict[str, Any], settings: list[dict[str, Any]], result, provenance: dict,
              labels: list[str] | None = None) -> dict:
    """Write config.yaml, metrics.csv, summary.json and returns.png into `out`; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    runs, evals = m["eval_return"].shape
    labels = labels or [f"setting {i}" for i in range(len(settings))]
    write_text(out / "config.yaml", yaml.safe_dump({**config, "seeds": sorted(set(map(int, result.seeds)))},
                                                   sort_keys=False)
               + ("" if len(settings) == 1 else yaml.safe_dump({"settings": settings}, sort_keys=False)))
    write_csv(out / "metrics.csv", metrics_rows(m, result.seeds, result.setting))

    total_steps = float(m["env_steps"][0, -1]) * runs
    per_run = []
    for r in range(runs):
        ret = m["eval_return"][r]
        per_run.append({"setting": int(result.setting[r]), "label": labels[int(result.setting[r])],
                        "seed": int(result.seeds[r]), "final_return": float(ret[-1]),
                        "best_return": float(np.nanmax(ret))})
    summary = {
        "algo": config.get("algo"), "env": config.get("env"), "backend": config.get("backend"),
        "runs": per_run,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "env_steps_per_second": total_steps / max(result.run_seconds, 1e-9),
        **provenance,
    }
    write_json(out / "summary.json", summary)
    curves = []
    for i, label in enumerate(labels):
        sel = result.setting == i
        curves.append((label, m["env_steps"][sel][0], m["eval_return"][sel]))
    plot_curves(out / "returns.png", curves,
                title=f"{config.get('algo')} on {config.get('env')} ({config.get('backend')})",
                footer=f"{provenance['command']} | {provenance['git_revision']} | {provenance['device']}")
    return summary
