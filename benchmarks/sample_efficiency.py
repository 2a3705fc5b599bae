"""Sample efficiency on Brax inverted_pendulum: MBPO, classic Dyna, MVE, STEVE and SAC, return vs env steps.

  PYTHONPATH=. python benchmarks/sample_efficiency.py [--quick] [--seeds 0 1 2 3 4]
      [--total-steps N] [--budget ALGO=N ...] [--eval-every N] [--rollout-batch-size N]
      [--algos mbpo dyna mve steve sac] [--out results/sample_efficiency]

Each algorithm starts from its shipped config (`configs/<algo>/inverted_pendulum.yaml`). The only
changes are the overrides this script applies, and every one is recorded in summary.json:

* `eval_every` and `eval_episodes` are set to the same values for every algorithm, so every
  curve has the same evaluation points; `total_steps` is `--total-steps` for every algorithm
  except those given their own budget with `--budget ALGO=N` (SAC needs a longer run than the
  model-based methods to reach the threshold at all, and "env steps to 900" can only be measured
  inside the run);
* `warmup_steps` is kept at the shipped 1000 for all (it is 1000 in every shipped config);
* `rollout_batch_size` of MBPO and Dyna is lowered from the shipped value only if
  `--rollout-batch-size` is given (CPU time); nothing else (model, SAC, updates per step,
  real ratio, rollout schedule, value horizon) is changed.

All seeds of one algorithm run in one compiled program (`run_sweep(..., batching="map")`, so a
seed's curve equals that seed run alone). The algorithms run one after another; after each one,
`<out>/runs/<algo>.json` is written (metrics, settings, timings), so a crash loses nothing and a
rerun with the same arguments skips algorithms already done (`--fresh` reruns them).

Then it writes, from those files:
  <out>/inverted_pendulum.png  mean eval return vs env steps, interquartile band across seeds
  <out>/inverted_pendulum.csv  algo, seed, env_steps, eval_return
  <out>/summary.json           per algo: env steps to 90% of the max return (900 of 1000) per
                               seed and the median, final returns, compile/run seconds, resolved
                               settings, overrides, provenance
  <out>/README.md              the table, the ratio SAC/MBPO, provenance and a short reading

"Steps to 900" is the first evaluation (env steps, warm-up included) whose mean return over
`eval_episodes` deterministic episodes is >= 900; a seed that never gets there within the budget
counts as "not reached" (the median over seeds is then reported as "> budget" when more than half
did not reach it).
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

from jaxdyna.config import load_yaml, parse_set, resolve, to_dict
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.results import plot_curves, steps_to_threshold

ENV = "inverted_pendulum"
MAX_RETURN = 1000.0
THRESHOLD = 0.9 * MAX_RETURN
ALGOS = ("mbpo", "dyna", "mve", "steve", "sac")
ROOT = Path(__file__).resolve().parent.parent
LABELS = {"mbpo": "MBPO", "dyna": "Dyna (classic, 1-step, buffer actions)", "mve": "MVE (H=3, TD-k)",
          "steve": "STEVE (H=3)", "sac": "SAC"}


def settings_for(algo: str, args) -> tuple[dict, dict, dict]:
    """(shipped values, overrides, merged values) for one algorithm."""
    shipped = load_yaml(ROOT / "configs" / algo / f"{ENV}.yaml")
    over = {"total_steps": args.budget.get(algo, args.total_steps), "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes}
    if algo in ("mbpo", "dyna") and args.rollout_batch_size is not None:
        over["rollout_batch_size"] = args.rollout_batch_size
    for item in args.set:                               # ALGO:KEY=VALUE, e.g. steve:steve_heads=mean
        who, _, kv = item.partition(":")
        if who == algo:
            over.update(parse_set([kv]))
    # record only what differs from the shipped file
    over = {k: v for k, v in over.items() if shipped.get(k) != v}
    return shipped, over, {**shipped, **over}


def run_algo(algo: str, args, prov: dict) -> dict:
    import jax

    from jaxdyna.sweep import run_sweep

    shipped, over, values = settings_for(algo, args)
    cfg, hp = resolve(values)
    t_start = time.time()

    log = args.out / "runs" / f"{algo}.progress.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")

    def progress(m):
        # seeds run one after another (lax.map): the i-th line belongs to seed args.seeds[i // num_evals]
        with open(log, "a") as f:
            f.write(json.dumps({"t": round(time.time() - t_start, 1), "env_steps": int(m["env_steps"]),
                                "eval_return": float(m["eval_return"])}) + "\n")
        print(f"  [{algo} {time.strftime('%H:%M:%S')} +{time.time() - t_start:6.0f}s] "
              f"env_steps {int(m['env_steps']):6d}  eval_return {float(m['eval_return']):7.1f}", flush=True)

    print(f"{algo}: {len(args.seeds)} seeds, overrides {over}", flush=True)
    res = run_sweep(cfg, [hp], seeds=list(args.seeds), progress_fn=progress, batching="map")
    print(f"{algo}: compile {res.compile_seconds:.0f}s, run {res.run_seconds:.0f}s", flush=True)
    m = res.metrics
    out = {
        "algo": algo,
        "config_file": f"configs/{algo}/{ENV}.yaml",
        "overrides": over,
        "shipped": {k: shipped.get(k) for k in over},
        "resolved": to_dict(cfg, hp),
        "seeds": [int(s) for s in res.seeds],
        "batching": "map",
        "compile_seconds": res.compile_seconds,
        "run_seconds": res.run_seconds,
        "env_steps": m["env_steps"][0].astype(int).tolist(),
        "eval_return": m["eval_return"].astype(float).tolist(),
        "metrics": {k: np.asarray(v).tolist() for k, v in m.items() if k not in ("env_steps", "eval_return")},
        "backend": jax.default_backend(),
        "provenance": prov,
    }
    write_json(args.out / "runs" / f"{algo}.json", out)
    return out


def partial_run(algo: str, args, prov: dict) -> dict:
    """A run rebuilt from `<algo>.progress.jsonl` when the sweep did not finish: completed seeds only."""
    shipped, over, values = settings_for(algo, args)
    cfg, hp = resolve(values)
    lines = [json.loads(x) for x in (args.out / "runs" / f"{algo}.progress.jsonl").read_text().splitlines() if x]
    n = cfg.num_evals
    done = len(lines) // n
    print(f"{algo}: PARTIAL, {done} of {len(args.seeds)} seeds finished (from the progress log)", flush=True)
    return {
        "algo": algo, "config_file": f"configs/{algo}/{ENV}.yaml", "overrides": over,
        "shipped": {k: shipped.get(k) for k in over}, "resolved": to_dict(cfg, hp),
        "seeds": list(args.seeds[:done]), "batching": "map", "partial": True,
        "compile_seconds": math.nan, "run_seconds": lines[done * n - 1]["t"] if done else math.nan,
        "env_steps": [x["env_steps"] for x in lines[:n]],
        "eval_return": [[x["eval_return"] for x in lines[i * n:(i + 1) * n]] for i in range(done)],
        "metrics": {}, "provenance": prov,
    }


def _fmt_steps(x: float) -> str:
    return "not reached" if not math.isfinite(x) else f"{int(x):,}"


def analyse(run: dict, budget: int) -> dict:
    steps = np.asarray(run["env_steps"], float)
    rets = np.asarray(run["eval_return"], float)
    per_seed = [steps_to_threshold(steps, r, THRESHOLD) for r in rets]
    # median with "not reached" as +inf: finite only when more than half the seeds reached it
    srt = np.sort(np.where(np.isfinite(per_seed), per_seed, np.inf))
    med = float(np.median(srt)) if len(srt) else math.nan
    # stricter: the first evaluation from which every later evaluation stays >= threshold
    def sustained(r):
        ok = r >= THRESHOLD
        tail = np.flip(np.cumprod(np.flip(ok)).astype(bool))
        hit = np.nonzero(tail)[0]
        return float(steps[hit[0]]) if hit.size else math.nan

    sus = [sustained(r) for r in rets]
    sus_med = float(np.median(np.where(np.isfinite(sus), sus, np.inf)))
    return {
        "sustained_steps_to_900_per_seed": {str(s): (None if not math.isfinite(x) else x)
                                            for s, x in zip(run["seeds"], sus)},
        "median_sustained_steps_to_900": None if not math.isfinite(sus_med) else sus_med,
        "median_sustained_steps_to_900_text": (_fmt_steps(sus_med) if math.isfinite(sus_med)
                                               else f"> {budget:,}"),
        "steps_to_900_per_seed": {str(s): (None if not math.isfinite(x) else x) for s, x in zip(run["seeds"], per_seed)},
        "seeds_reaching_900": int(np.sum(np.isfinite(per_seed))),
        "median_steps_to_900": None if not math.isfinite(med) else med,
        "median_steps_to_900_text": _fmt_steps(med) if math.isfinite(med) else f"> {budget:,} (not reached by most seeds)",
        "final_return_per_seed": {str(s): float(r[-1]) for s, r in zip(run["seeds"], rets)},
        "final_return_mean": float(rets[:, -1].mean()),
        "final_return_std": float(rets[:, -1].std()),
        "best_mean_return": float(rets.mean(axis=0).max()),
    }


def _ratio(stats: dict, budgets: dict, key: str) -> tuple[float | None, str]:
    """SAC's median env steps to 900 over MBPO's (by `key`), or a bound when one never got there."""
    mb, sc = stats.get("mbpo"), stats.get("sac")
    if not (mb and sc):
        return None, "n/a"
    a, b = mb[key], sc[key]
    if a is not None and b is not None:
        return b / a, f"{b / a:.2f}"
    if a is not None:
        return None, f"> {budgets['sac'] / a:.2f} (SAC did not reach 900 within {budgets['sac']:,} steps; lower bound)"
    if b is not None:
        return None, f"< {b / budgets['mbpo']:.2f} (MBPO did not reach 900 within {budgets['mbpo']:,} steps)"
    return None, "undefined (neither reached 900)"


def write_outputs(args, runs: dict, prov: dict, command: str) -> None:
    out = args.out
    budgets = {algo: int(run["resolved"]["total_steps"]) for algo, run in runs.items()}
    # CSV
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["algo", "seed", "env_steps", "eval_return"])
    for algo, run in runs.items():
        for s, r in zip(run["seeds"], run["eval_return"]):
            for st, v in zip(run["env_steps"], r):
                w.writerow([algo, s, st, f"{v:.3f}"])
    write_text(out / f"{ENV}.csv", buf.getvalue())

    stats = {algo: analyse(run, budgets[algo]) for algo, run in runs.items()}
    ratio, ratio_text = _ratio(stats, budgets, "median_steps_to_900")
    ratio_sus, ratio_sus_text = _ratio(stats, budgets, "median_sustained_steps_to_900")

    summary = {
        "env": ENV, "threshold": THRESHOLD, "max_return": MAX_RETURN, "env_step_budgets": budgets,
        "steps_definition": "first evaluation (env steps incl. warm-up) whose mean deterministic return >= threshold",
        "sustained_steps_definition": "first evaluation from which every later evaluation is >= threshold",
        "ratio_sac_over_mbpo_median_steps": ratio, "ratio_sac_over_mbpo_text": ratio_text,
        "ratio_sac_over_mbpo_median_sustained_steps": ratio_sus, "ratio_sac_over_mbpo_sustained_text": ratio_sus_text,
        "algos": {algo: {**stats[algo],
                         "seeds": run["seeds"], "compile_seconds": run["compile_seconds"],
                         "run_seconds": run["run_seconds"], "config_file": run["config_file"],
                         "overrides": run["overrides"], "shipped_values_of_overrides": run["shipped"],
                         "resolved": run["resolved"], "run_provenance": run["provenance"]}
                  for algo, run in runs.items()},
        "provenance": prov,
    }
    write_json(out / "summary.json", summary)

    curves = [(LABELS[a], np.asarray(runs[a]["env_steps"]), np.asarray(runs[a]["eval_return"]))
              for a in ALGOS if a in runs]
    revs = sorted({runs[a]["provenance"]["git_revision"] for a in runs})
    rb = {a: runs[a]["resolved"]["rollout_batch_size"] for a in runs if a in ("mbpo", "dyna")}
    warmup = next(iter(runs.values()))["resolved"]["warmup_steps"]
    plot_curves(out / f"{ENV}.png", curves,
                title=f"Brax {ENV}: return vs env steps (mean, IQR band over seeds)",
                footer=(f"{command}\nreport at {prov['git_revision']}, runs at {', '.join(revs)} | "
                        f"{prov['device']} | rollout_batch_size {rb}"),
                hlines=[(THRESHOLD, f"90% of max ({THRESHOLD:.0f})")],
                vlines=[(warmup, f"end of random warm-up ({warmup})")] if warmup else [],
                xlabel="env steps (warm-up included)", ylabel="eval return (mean of deterministic episodes)",
                ylim=(-20, 1050))

    rows = ["| algo | env-step budget | seeds | seeds reaching 900 | median env steps to 900 (first eval >= 900) | "
            "median env steps to 900 sustained (all later evals >= 900) | final mean return (± std) | "
            "compile s | run s |",
            "|---|---|---|---|---|---|---|---|---|"]
    for a in ALGOS:
        if a not in runs:
            continue
        s = stats[a]
        rows.append(f"| {a} | {budgets[a]:,} | {len(runs[a]['seeds'])} | {s['seeds_reaching_900']}/{len(runs[a]['seeds'])} | "
                    f"{s['median_steps_to_900_text']} | {s['median_sustained_steps_to_900_text']} | {s['final_return_mean']:.1f} ± {s['final_return_std']:.1f} | "
                    f"{runs[a]['compile_seconds']:.0f} | {runs[a]['run_seconds']:.0f} |")
    per_seed = ["| algo | " + " | ".join(f"seed {s}" for s in runs[next(iter(runs))]["seeds"]) + " |",
                "|---|" + "---|" * len(runs[next(iter(runs))]["seeds"])]
    for a in ALGOS:
        if a in runs:
            per_seed.append(f"| {a} | " + " | ".join(_fmt_steps(math.nan if v is None else v)
                                                  for v in stats[a]["steps_to_900_per_seed"].values()) + " |")
    over_lines = []
    for a in ALGOS:
        if a in runs:
            o = runs[a]["overrides"]
            sh = runs[a]["shipped"]
            desc = ", ".join(f"`{k}` {sh.get(k)} -> {v}" for k, v in o.items()) or "none"
            over_lines.append(f"* `{a}` (`{runs[a]['config_file']}`): {desc}")
    budget_text = (f"{next(iter(budgets.values())):,} for every algorithm" if len(set(budgets.values())) == 1
                   else ", ".join(f"{a} {budgets[a]:,}" for a in ALGOS if a in runs))
    v = prov["versions"]
    names = {"mbpo": "MBPO", "dyna": "classic Dyna", "mve": "MVE", "steve": "STEVE", "sac": "SAC"}
    text = f"""# Sample efficiency on Brax inverted_pendulum: {" vs ".join(names[a] for a in ALGOS if a in runs)}

![return vs env steps](inverted_pendulum.png)

Mean deterministic evaluation return ({args.eval_episodes} episodes per evaluation, every
{args.eval_every} env steps) vs real env steps (warm-up included), band = interquartile range over
seeds. Threshold: 90% of the max return ({THRESHOLD:.0f} of {MAX_RETURN:.0f}). Env-step budget per
algorithm: {budget_text}.

{chr(10).join(rows)}

**Ratio SAC / MBPO, median env steps to 900 sustained (from then on every evaluation >= 900):
{ratio_sus_text}**; by the first evaluation >= 900: {ratio_text} (a single lucky evaluation counts
there, so the sustained ratio is the headline).

Env steps to 900 per seed:

{chr(10).join(per_seed)}

## Settings

Each algorithm uses its shipped config; the overrides (all of them) were:

{chr(10).join(over_lines)}

Full resolved settings per algorithm are in `summary.json` (`algos.<algo>.resolved`); raw curves
in `inverted_pendulum.csv` and `runs/<algo>.json` (all logged metrics).

## Reading

{args.reading or "(see below)"}

## Provenance

* command that wrote this report: `{command}`
* commands that produced the runs: {"; ".join(f"{a}: `{runs[a]['provenance']['command']}`" for a in ALGOS if a in runs)}
* git revision (report): `{prov['git_revision']}`; git revision of each run: {"; ".join(f"{a}: `{runs[a]['provenance']['git_revision']}`" for a in ALGOS if a in runs)}
* device: {prov['device']}
* versions: {", ".join(f"{k} {val}" for k, val in v.items())}
* batching: `run_sweep(..., batching="map")` (seeds one after another in one compiled program)
"""
    write_text(out / "README.md", text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--total-steps", type=int, default=8000)
    p.add_argument("--budget", nargs="+", default=[], metavar="ALGO=N",
                   help="an algorithm's own env-step budget (total_steps), e.g. sac=20000")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--set", nargs="+", default=[], metavar="ALGO:KEY=VALUE",
                   help="override a config key of one algorithm (recorded with the run), e.g. mve:updates_per_step=10")
    p.add_argument("--rollout-batch-size", type=int, default=None,
                   help="MBPO and Dyna rollouts per refit (default: the shipped configs' values)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "sample_efficiency")
    p.add_argument("--fresh", action="store_true", help="rerun algorithms whose runs/<algo>.json exists")
    p.add_argument("--report-only", action="store_true", help="only rebuild outputs from runs/*.json")
    p.add_argument("--allow-partial", action="store_true",
                   help="with --report-only: use the finished seeds of an unfinished run (progress log)")
    p.add_argument("--reading", default="", help="text for the README's reading section")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 1500 steps, rollout batch 1000")
    args = p.parse_args(argv)
    try:
        args.budget = {a: int(n) for a, n in (x.split("=", 1) for x in args.budget)}
        assert set(args.budget) <= set(ALGOS)
    except (ValueError, AssertionError):
        p.error(f"--budget: expected ALGO=N with ALGO one of {', '.join(ALGOS)}, got {' '.join(args.budget)}")
    if args.quick:
        args.seeds, args.total_steps, args.eval_every, args.eval_episodes = [0], 1500, 250, 2
        args.rollout_batch_size = 1000
        if args.out == ROOT / "results" / "sample_efficiency":
            args.out = Path("/tmp/sample_efficiency_quick")
    argv_rec = [a for i, a in enumerate(argv) if a != "--reading" and (i == 0 or argv[i - 1] != "--reading")]
    command = shlex.join(["PYTHONPATH=.", "python", "benchmarks/sample_efficiency.py", *argv_rec])
    prov = provenance(command)
    runs = {}
    for algo in ALGOS:
        if algo not in args.algos:
            continue
        path = args.out / "runs" / f"{algo}.json"
        if path.exists() and not args.fresh:
            run = json.loads(path.read_text())
            _, over, _ = settings_for(algo, args)
            if run["overrides"] == over and run["seeds"] == list(args.seeds):
                print(f"{algo}: reusing {path}", flush=True)
                runs[algo] = run
                continue
            if args.report_only:
                print(f"{algo}: {path} has other settings; skipped", flush=True)
                continue
        if args.report_only:
            if args.allow_partial and (args.out / "runs" / f"{algo}.progress.jsonl").exists():
                run = partial_run(algo, args, prov)
                if run["seeds"]:
                    runs[algo] = run
            continue
        runs[algo] = run_algo(algo, args, prov)
    if runs:
        write_outputs(args, runs, prov, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
