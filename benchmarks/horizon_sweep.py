"""MVE horizon sweep on Brax inverted_pendulum: H = 0, 1, 3, 5, 10 as ONE vmapped program.

  PYTHONPATH=. python benchmarks/horizon_sweep.py [--quick] [--seeds 0 1 2] [--horizons 0 1 3 5 10]
      [--total-steps N] [--out results/horizon_sweep]

Starts from `configs/mve/inverted_pendulum.yaml` and applies the overrides below (all recorded in
summary.json). `value_horizon` (static: the compiled imagined-rollout length) is set to the largest
horizon swept; the effective horizon `horizon` is a traced hyperparameter, so every (H, seed) pair
is one run of a single compiled program: `run_sweep(cfg, [hp(H) for H in horizons], seeds,
batching="vmap")`. H = 0 is SAC's target exactly (same program, horizon traced to 0).

The raw result of the program is written first to `<out>/runs/sweep.json`; then
  <out>/inverted_pendulum.png  mean eval return vs env steps, IQR band over seeds, one curve per H
  <out>/inverted_pendulum.csv  H, seed, env_steps, eval_return
  <out>/summary.json           per H: final return per seed, mean, env steps to 900 (90% of max)
                               per seed and median, compile/run seconds of the one program,
                               overrides, resolved settings, provenance
  <out>/README.md              the table and provenance
`--report-only` rebuilds the outputs from runs/sweep.json.

The CPU budget forces a scaled-down model and budget (see OVERRIDES); the results are for those
settings, not for the shipped config.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from jaxdyna.config import load_yaml, resolve, to_dict
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.results import plot_curves, steps_to_threshold

ENV = "inverted_pendulum"
MAX_RETURN = 1000.0
THRESHOLD = 0.9 * MAX_RETURN
ROOT = Path(__file__).resolve().parent.parent
CONFIG = f"configs/mve/{ENV}.yaml"

# CPU budget: smaller ensemble and networks, fewer model epochs, shorter run (every one recorded)
OVERRIDES = {
    "ensemble_size": 3,
    "num_elites": 2,
    "model_hidden": [64, 64],
    "model_max_train": 5000,
    "model_max_epochs": 10,
    "actor_hidden": [128, 128],
    "critic_hidden": [128, 128],
    "total_steps": 3000,
    "warmup_steps": 500,
    "eval_every": 250,
}


def values_for(args) -> tuple[dict, dict, dict]:
    """(shipped values, overrides actually differing from them, merged values)."""
    shipped = load_yaml(ROOT / CONFIG)
    over = dict(OVERRIDES)
    over["value_horizon"] = int(max(args.horizons))
    over["total_steps"] = args.total_steps
    over["eval_every"] = args.eval_every
    over["eval_episodes"] = args.eval_episodes
    over["td_k"] = not args.no_td_k
    over = {k: v for k, v in over.items() if shipped.get(k) != v}
    return shipped, over, {**shipped, **over}


def run(args, prov: dict) -> dict:
    import jax

    from jaxdyna.sweep import run_sweep

    shipped, over, values = values_for(args)
    cfg, hp = resolve(values)
    settings = [hp.replace(horizon=float(h)) for h in args.horizons]
    t_start = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "runs" / "progress.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")

    def progress(m):
        st = np.asarray(m["env_steps"]).reshape(-1)
        r = np.asarray(m["eval_return"]).reshape(-1)
        line = (f"[{time.strftime('%H:%M:%S')} +{time.time() - t_start:6.0f}s] env_steps {int(st.max()):6d} "
                f"eval_return mean {r.mean():7.1f} min {r.min():7.1f} max {r.max():7.1f} (runs {r.size})")
        with open(log, "a") as f:
            f.write(line + "\n")
        print("  " + line, flush=True)

    n = len(args.horizons) * len(args.seeds)
    print(f"{n} runs (H {args.horizons} x seeds {args.seeds}) in one vmapped program; overrides {over}",
          flush=True)
    res = run_sweep(cfg, settings, seeds=list(args.seeds), progress_fn=progress, batching="vmap")
    print(f"compile {res.compile_seconds:.0f}s, run {res.run_seconds:.0f}s", flush=True)
    m = res.metrics
    out = {
        "config_file": CONFIG,
        "overrides": over,
        "shipped_values_of_overrides": {k: shipped.get(k) for k in over},
        "resolved": to_dict(cfg, hp),
        "horizons": [float(h) for h in args.horizons],
        "run_horizon": [float(args.horizons[i]) for i in res.setting],
        "run_seed": [int(s) for s in res.seeds],
        "batching": "vmap",
        "num_runs": int(len(res.seeds)),
        "compile_seconds": res.compile_seconds,
        "run_seconds": res.run_seconds,
        "env_steps": np.asarray(m["env_steps"]).astype(int).tolist(),
        "eval_return": np.asarray(m["eval_return"]).astype(float).tolist(),
        "metrics": {k: np.asarray(v).tolist() for k, v in m.items() if k not in ("env_steps", "eval_return")},
        "backend": jax.default_backend(),
        "provenance": prov,
    }
    write_json(args.out / "runs" / "sweep.json", out)
    return out


def _fmt_steps(x) -> str:
    return "not reached" if x is None or not math.isfinite(x) else f"{int(x):,}"


def _label(h: float) -> str:
    return f"H={int(h)}" if float(h).is_integer() else f"H={h}"


def analyse(raw: dict) -> dict:
    steps_all = np.asarray(raw["env_steps"], float)
    rets_all = np.asarray(raw["eval_return"], float)
    hs = np.asarray(raw["run_horizon"])
    seeds = np.asarray(raw["run_seed"])
    per_h = {}
    for h in raw["horizons"]:
        idx = np.nonzero(hs == h)[0]
        steps = steps_all[idx[0]]
        rets = rets_all[idx]
        to900 = [steps_to_threshold(steps, r, THRESHOLD) for r in rets]
        med = float(np.median(np.where(np.isfinite(to900), to900, np.inf)))
        per_h[_label(h)] = {
            "horizon": h,
            "seeds": [int(s) for s in seeds[idx]],
            "env_steps": steps.astype(int).tolist(),
            "eval_return": rets.tolist(),
            "final_return_per_seed": {str(int(s)): float(r[-1]) for s, r in zip(seeds[idx], rets)},
            "final_return_mean": float(rets[:, -1].mean()),
            "final_return_std": float(rets[:, -1].std()),
            "mean_return_over_all_evals_after_warmup": float(
                rets[:, steps > raw["resolved"]["warmup_steps"]].mean()),
            "best_mean_return": float(rets.mean(axis=0).max()),
            "steps_to_900_per_seed": {str(int(s)): (None if not math.isfinite(x) else x)
                                      for s, x in zip(seeds[idx], to900)},
            "seeds_reaching_900": int(np.sum(np.isfinite(to900))),
            "median_steps_to_900": None if not math.isfinite(med) else med,
        }
    return per_h


def write_outputs(args, raw: dict, command: str) -> None:
    out = args.out
    per_h = analyse(raw)
    prov = raw["provenance"]

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["H", "seed", "env_steps", "eval_return"])
    for h, s, st, r in zip(raw["run_horizon"], raw["run_seed"], raw["env_steps"], raw["eval_return"]):
        for a, b in zip(st, r):
            w.writerow([_label(h)[2:], s, a, f"{b:.3f}"])
    write_text(out / f"{ENV}.csv", buf.getvalue())

    summary = {
        "env": ENV, "algo": "mve (SAC learner)", "threshold": THRESHOLD, "max_return": MAX_RETURN,
        "env_step_budget": raw["resolved"]["total_steps"],
        "steps_definition": "first evaluation (env steps incl. warm-up) whose mean deterministic return >= 900",
        "program": {"batching": raw["batching"], "num_runs": raw["num_runs"],
                    "compiled_programs": 1, "value_horizon (static)": raw["resolved"]["value_horizon"],
                    "compile_seconds": raw["compile_seconds"], "run_seconds": raw["run_seconds"],
                    "backend": raw["backend"]},
        "horizons": {k: {kk: vv for kk, vv in v.items() if kk not in ("env_steps", "eval_return")}
                     for k, v in per_h.items()},
        "config_file": raw["config_file"],
        "overrides": raw["overrides"],
        "shipped_values_of_overrides": raw["shipped_values_of_overrides"],
        "resolved": raw["resolved"],
        "provenance": prov,
        "report_command": command,
    }
    write_json(out / "summary.json", summary)

    import textwrap

    over_txt = "\n".join(textwrap.wrap(", ".join(f"{k}={v}" for k, v in raw["overrides"].items()), 170))
    footer = (f"{prov['command']}\n{prov['git_revision']} | {prov['device']} | one vmapped program, "
              f"{raw['num_runs']} runs\noverrides: {over_txt}")
    warmup = raw["resolved"]["warmup_steps"]
    plot_curves(out / f"{ENV}.png",
                [(label, np.asarray(h["env_steps"]), np.asarray(h["eval_return"])) for label, h in per_h.items()],
                title=(f"MVE (SAC) on Brax {ENV}: horizon sweep, value_horizon={raw['resolved']['value_horizon']}, "
                       f"mean + IQR over seeds"),
                footer=footer, hlines=[(THRESHOLD, f"90% of max ({THRESHOLD:.0f})")],
                vlines=[(warmup, f"end of random warm-up ({warmup})")] if warmup else [],
                xlabel="env steps (warm-up included)", ylabel="eval return (mean of deterministic episodes)",
                ylim=(-20, 1050))

    rows = ["| H | seeds | final return mean ± std | final return per seed | seeds reaching 900 | "
            "median env steps to 900 | mean return over evals after warm-up |",
            "|---|---|---|---|---|---|---|"]
    for label, s in per_h.items():
        rows.append(f"| {label[2:]} | {len(s['seeds'])} | {s['final_return_mean']:.1f} ± {s['final_return_std']:.1f} | "
                    + ", ".join(f"{v:.1f}" for v in s["final_return_per_seed"].values())
                    + f" | {s['seeds_reaching_900']}/{len(s['seeds'])} | {_fmt_steps(s['median_steps_to_900'])} | "
                    f"{s['mean_return_over_all_evals_after_warmup']:.1f} |")
    sh = raw["shipped_values_of_overrides"]
    over_lines = "\n".join(f"* `{k}`: {sh.get(k)} -> {v}" for k, v in raw["overrides"].items())
    v = prov["versions"]
    text = f"""# MVE horizon sweep on Brax inverted_pendulum (H = {", ".join(k[2:] for k in per_h)})

![return vs env steps](inverted_pendulum.png)

MVE with SAC as the learner (`{raw['config_file']}` plus the overrides below). All
{raw['num_runs']} runs ({len(per_h)} horizons x {len(next(iter(per_h.values()))['seeds'])} seeds) are
ONE compiled program: `value_horizon` = {raw['resolved']['value_horizon']} is static, the effective
horizon `horizon` is a traced hyperparameter, and `run_sweep(..., batching="vmap")` vmaps over the
(H, seed) run axis. Compile {raw['compile_seconds']:.0f} s, run {raw['run_seconds']:.0f} s
(whole program, all runs, {raw['backend']}).

Evaluation: mean deterministic return of {raw['resolved']['eval_episodes']} episodes every
{raw['resolved']['eval_every']} env steps after the warm-up of {raw['resolved']['warmup_steps']} random steps
(first evaluation at {raw['resolved']['warmup_steps'] + raw['resolved']['eval_every']}; the x axis counts the
warm-up); band = interquartile range over seeds. "Env steps to 900" = first evaluation
>= 900 (90% of the max 1000); median over seeds, "not reached" when more than half never got there
within {raw['resolved']['total_steps']:,} env steps.

{chr(10).join(rows)}

## Reading

{args.reading or "(none given)"}

## Settings

Every change from `{raw['config_file']}` (CPU budget; the shipped model is 7 x 4x200 and 5000
steps), shipped -> used:

{over_lines}

Everything else as shipped; the full resolved settings are in `summary.json` (`resolved`), the
raw curves and all logged metrics in `inverted_pendulum.csv` and `runs/sweep.json`.

## Provenance

* command: `{prov['command']}`
* git revision: `{prov['git_revision']}`
* device: {prov['device']}
* versions: {", ".join(f"{k} {val}" for k, val in v.items())}
"""
    write_text(out / "README.md", text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--horizons", nargs="+", type=int, default=[0, 1, 3, 5, 10])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--total-steps", type=int, default=OVERRIDES["total_steps"])
    p.add_argument("--eval-every", type=int, default=OVERRIDES["eval_every"])
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--no-td-k", action="store_true", help="set td_k false (the config has true)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "horizon_sweep")
    p.add_argument("--report-only", action="store_true", help="rebuild outputs from <out>/runs/sweep.json")
    p.add_argument("--reading", default="", help="text for the README's reading section")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1000 steps, 2 eval episodes, /tmp")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.total_steps, args.eval_episodes = [0], 1000, 2
        if args.out == ROOT / "results" / "horizon_sweep":
            args.out = Path("/tmp/horizon_sweep_quick")
    argv_rec = [a for i, a in enumerate(argv) if a != "--reading" and (i == 0 or argv[i - 1] != "--reading")]
    command = shlex.join(["PYTHONPATH=.", "python", "benchmarks/horizon_sweep.py", *argv_rec])
    if args.report_only:
        raw = json.loads((args.out / "runs" / "sweep.json").read_text())
    else:
        raw = run(args, provenance(command))
    write_outputs(args, raw, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
