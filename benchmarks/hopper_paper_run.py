"""The Hopper paper run: MBPO (and SAC) on Brax hopper at the MBPO paper's settings, N seeds in one
program, with curves, wall time and device.

Each algorithm runs `configs/<algo>/hopper.yaml` (125k env steps, evaluation every 5k) for
`--seeds` seeds as one sweep group (vmapped on a GPU), checkpointed after every evaluation
period, through the same runner as `jaxdyna sweep`. `--time-limit` gives each algorithm a wall-clock
budget (compile included): no evaluation period starts that would, at the last one's pace, end
past it, so a run that does not fit stops cleanly, is labelled partial with the env steps it
reached, and `--resume` continues it. Writes, under `--out`: `<name>.json` (curves per seed, wall
time per period, compile seconds, device and versions), `<name>.md` (a table of median returns and
wall time per evaluation, and the sample-efficiency reading) and `<name>.png` (return vs env steps,
median and interquartile band over seeds); the sweep directories go to `--runs`
(default `<out>/<name>_runs/`).

    python benchmarks/hopper_paper_run.py --out results/hopper_paper_run --name gpu        # a GPU
    python benchmarks/hopper_paper_run.py --algos mbpo --time-limit 9m --name gpu_mbpo     # what fits in 9 minutes
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from _timing import choice_list, md_header

from jaxdyna.results import steps_to_threshold

ROOT = Path(__file__).resolve().parent.parent
ALGOS = ("mbpo", "sac", "dyna", "mve", "steve")


def run_algo(algo: str, env: str, seeds: int, overrides: dict, time_limit: float | None, runs: Path,
             resume: bool, command: str, quiet: bool = False) -> dict:
    """One algorithm's sweep group; what it reached, per evaluation and per seed."""
    import jax
    import yaml

    from jaxdyna.runner import prepare_out, run_plan
    from jaxdyna.sweepfile import plan_sweep

    data = {"name": f"{env}_{algo}", "configs": [f"{algo}/{env}"], "seeds": list(range(seeds)),
            "set": dict(overrides), "chunk_evals": 1}
    plan = plan_sweep(data, base=ROOT / "configs")
    out = runs / algo
    prepare_out(out, plan, resume, overwrite=not resume)
    t0 = time.perf_counter()
    outcome = run_plan(plan, out, yaml.safe_dump(data, sort_keys=False), command, resume=resume,
                       show_progress=not quiet, time_limit=time_limit)
    wall = time.perf_counter() - t0
    g = outcome.summary["groups"]["g00"]
    cfg = plan.groups[0].cfg
    rec = {"algo": algo, "config": f"configs/{algo}/{env}.yaml", "overrides": overrides, "seeds": seeds,
           "total_steps": cfg.total_steps, "warmup_steps": cfg.warmup_steps, "complete": outcome.complete, "wall_seconds": wall,
           "compile_seconds": g["compile_seconds"], "run_seconds": g["run_seconds"],
           "period_seconds": g.get("chunk_seconds") or [], "env_steps": [], "eval_return": []}
    path = out / "groups" / "g00" / "metrics.npz"
    if path.is_file():
        with np.load(path) as m:
            rec["env_steps"] = m["env_steps"][0].astype(int).tolist()
            rec["eval_return"] = m["eval_return"].astype(float).tolist()
            if "model_epochs" in m:             # the last refit of each period, per seed
                rec["model_epochs"] = m["model_epochs"].astype(int).tolist()
    try:
        rec["device_peak_bytes"] = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    except Exception:  # noqa: BLE001 - not every backend reports memory
        rec["device_peak_bytes"] = None
    return rec


def reading(result: dict) -> str:
    """Sample efficiency, as far as both curves go: the env steps MBPO needed to reach SAC's best
    median return, against the steps SAC needed for it."""
    a, b = result["algos"].get("mbpo"), result["algos"].get("sac")
    if not a or not b or not a["env_steps"] or not b["env_steps"]:
        return ""
    med_b = np.median(np.asarray(b["eval_return"], float), axis=0)
    best = int(np.argmax(med_b))
    level, sac_steps = float(med_b[best]), int(b["env_steps"][best])
    # the first evaluation where MBPO's median over seeds reaches it (NaN: none)
    mbpo_steps = steps_to_threshold(np.asarray(a["env_steps"]), np.median(np.asarray(a["eval_return"], float), axis=0),
                                    level)
    if np.isnan(mbpo_steps):
        return (f"SAC's best median return is {level:.0f} (at {sac_steps:,} env steps); MBPO's median did not "
                f"reach it within the {a['env_steps'][-1]:,} env steps it ran.")
    return (f"SAC's best median return is {level:.0f}, first reached at {sac_steps:,} env steps; MBPO's median "
            f"reaches it at {mbpo_steps:,.0f}: **{sac_steps / mbpo_steps:.1f}x fewer env steps** (measured up to "
            f"{b['env_steps'][-1]:,} SAC and {a['env_steps'][-1]:,} MBPO env steps per seed).")


def slowest_seed_share(epochs) -> float | None:
    """Median over refits of (the seeds' mean model epochs) / (the slowest seed's): the share of a
    vmapped model fit's epochs that do work. Every seed's early-stopping loop runs until the
    slowest seed stops, so 1 - share of the fit's epochs are paid by seeds that already stopped.
    None with fewer than two seeds. `epochs`: [seed, refit]."""
    e = np.asarray(epochs, float)
    if e.ndim != 2 or e.shape[0] < 2 or e.shape[1] == 0:
        return None
    return float(np.median(e.mean(axis=0) / np.maximum(e.max(axis=0), 1.0)))


def save(result: dict, out: Path, name: str) -> None:
    from jaxdyna.io import write_json, write_text
    from jaxdyna.results import plot_curves

    result["reading"] = reading(result)
    write_json(out / f"{name}.json", result)
    lines = md_header(f"Hopper paper run: {', '.join(result['algos'])} x {result['seeds']} seeds",
                      result["command"], result["provenance"]) + [""]
    for algo, r in result["algos"].items():
        reached = r["env_steps"][-1] if r["env_steps"] else 0
        state = "complete" if r["complete"] else f"**partial: {reached:,} of {r['total_steps']:,} env steps**"
        lines += [f"- {algo} (`{r['config']}`{', overrides ' + str(r['overrides']) if r['overrides'] else ''}): "
                  f"{state}; wall {r['wall_seconds']:.0f} s = build and warm-up {r['compile_seconds'] or 0:.0f} s + "
                  f"evaluation periods {r['run_seconds'] or 0:.0f} s + checkpoints; "
                  + (f"{(reached - r['warmup_steps']) * r['seeds'] / r['run_seconds']:.0f} env steps/s in total "
                     "over the evaluation periods (evaluations included); " if r["run_seconds"] else "")
                  + (f"device peak {r['device_peak_bytes'] / 2**30:.1f} GiB (this process so far)" if r.get("device_peak_bytes") else "")]
        share = slowest_seed_share(r.get("model_epochs", []))
        if share is not None:
            e = np.asarray(r["model_epochs"])
            lines += [f"  - model epochs per refit (the last refit of each period): {e.min()}-{e.max()}, median "
                      f"{np.median(e):.0f}; the seeds' mean is {share:.2f} of the slowest seed's (median over "
                      f"refits), so about {1 - share:.0%} of the vmapped fit's epochs run for seeds that had stopped"]
    lines += ["", "Median eval return over seeds [interquartile range] and wall seconds of each evaluation "
              "period, at each evaluation's env steps per seed:", ""]
    algos = list(result["algos"])
    lines += ["| env steps | " + " | ".join(f"{a} return | {a} period s" for a in algos) + " |",
              "|---|" + "---|---|" * len(algos)]
    steps = sorted({s for r in result["algos"].values() for s in r["env_steps"]})
    for s in steps:
        cells = []
        for r in result["algos"].values():
            if s in r["env_steps"]:
                i = r["env_steps"].index(s)
                col = np.asarray(r["eval_return"], float)[:, i]
                lo, med, hi = np.percentile(col, [25, 50, 75])
                sec = r["period_seconds"][i] if i < len(r["period_seconds"]) else float("nan")
                cells += [f"{med:.0f} [{lo:.0f}, {hi:.0f}]", f"{sec:.1f}"]
            else:
                cells += ["", ""]
        lines.append(f"| {s:,} | " + " | ".join(cells) + " |")
    if result["reading"]:
        lines += ["", result["reading"]]
    write_text(out / f"{name}.md", "\n".join(lines) + "\n")
    prov = result["provenance"]
    curves = [(f"{a}" + ("" if r["complete"] else " (partial)"), np.asarray(r["env_steps"]), np.asarray(r["eval_return"]))
              for a, r in result["algos"].items() if r["env_steps"]]
    warmups = sorted({r.get("warmup_steps") for r in result["algos"].values()} - {None})
    plot_curves(out / f"{name}.png", curves, title=f"Brax {result['env']}, paper settings, {result['seeds']} seeds "
                "(line: mean, band: interquartile range)", vlines=[(w, "end of warm-up") for w in warmups],
                footer=f"{result['command']}\n{prov['git_revision']} | {prov['device']} | jax {prov['versions']['jax']}"
                       f", brax {prov['versions'].get('brax', '?')}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algos", default="mbpo,sac", help=f"comma-separated, run in this order, of {', '.join(ALGOS)}")
    ap.add_argument("--env", default="hopper")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, every algo")
    ap.add_argument("--time-limit", default=None,
                    help="wall-clock budget per algorithm, one value or one per algo (e.g. 270,180 or 9m)")
    ap.add_argument("--resume", action="store_true", help="continue the runs in --runs")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--out", default="results/hopper_paper_run")
    ap.add_argument("--name", default="gpu")
    ap.add_argument("--runs", help="where the sweep directories (with checkpoints) go (default <out>/<name>_runs)")
    args = ap.parse_args(argv)

    from jaxdyna.cli import parse_duration
    from jaxdyna.config import ConfigError, load_yaml, parse_set, resolve

    algos = choice_list(ap, "--algos", args.algos, ALGOS)
    if args.seeds < 1:
        ap.error(f"--seeds: must be a positive integer, got {args.seeds}")
    limits: list[float | None] = [None] * len(algos)
    if args.time_limit:
        parts = args.time_limit.split(",")
        if len(parts) not in (1, len(algos)):
            ap.error(f"--time-limit: give one value or one per algo ({len(algos)}), got {len(parts)}")
        try:
            limits = [parse_duration(p) for p in (parts * len(algos) if len(parts) == 1 else parts)]
        except argparse.ArgumentTypeError as e:
            ap.error(f"--time-limit: {e}")
    try:
        overrides = parse_set(args.set)
        for algo in algos:                       # every config resolves before anything runs
            path = ROOT / "configs" / algo / f"{args.env}.yaml"
            if not path.is_file():
                ap.error(f"--env: no config {path.relative_to(ROOT)}")
            resolve({**load_yaml(path), **overrides})
    except ConfigError as e:
        ap.error(str(e))

    from jaxdyna.io import provenance

    command = "python benchmarks/hopper_paper_run.py " + " ".join(shlex.quote(a) for a in argv)
    out = Path(args.out)
    result = {"command": command, "provenance": provenance(command), "env": args.env, "seeds": args.seeds,
              "time_limits": limits, "algos": {}}
    for algo, limit in zip(algos, limits):
        print(f"hopper_paper_run: {algo} x {args.seeds} seeds" + (f", time limit {limit:.0f} s" if limit else ""),
              file=sys.stderr, flush=True)
        runs = Path(args.runs) if args.runs else out / f"{args.name}_runs"
        result["algos"][algo] = run_algo(algo, args.env, args.seeds, overrides, limit, runs, args.resume, command,
                                         args.quiet)
        save(result, out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
