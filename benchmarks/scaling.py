"""Seed scaling: env steps/s, memory and compile seconds for 1, 2, 4, 8, 16, ... batched seeds.

For each algorithm's shipped config on one env (default hopper, the paper settings) and each seed
count N, a fresh Python process builds `init` and `advance` over N runs, batched the way the CLI
batches them on this backend (`vmap` on accelerators, `lax.map` on CPU; `--batching` overrides),
times XLA compilation cold (no persistent cache), runs `init` (warm-up, untimed) and then times
`advance` over one evaluation period of `--chunks` model_train_freq chunks (evaluation included),
median of `--repeats` calls after a first untimed one. Memory per cell: the device's peak bytes in
use where the backend reports it (GPU), XLA's own plan for `advance` (arguments + outputs + temp),
and the process's peak resident memory (what a CPU host must have). A cell that fails (e.g. out
of memory) is recorded with its error and the next one runs. Writes JSON, a Markdown table and a
two-panel plot (total env steps/s and memory against N), updated after every cell.

    python benchmarks/scaling.py --out results/scaling --name gpu                     # a GPU, paper settings
    python benchmarks/scaling.py --seeds 1,2,4 --set rollout_batch_size=10000 ...    # CPU, reduced budget
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _timing import md_header, positive_ints, timed

ALGOS = ("sac", "dyna", "mbpo", "mve", "steve")
HERE = Path(__file__).resolve()


def one_period(values: dict, chunks: int) -> dict:
    """Config values for a program whose `advance` is one evaluation period of `chunks` chunks after
    the config's warm-up: what the throughput benchmarks time (one evaluation episode per period)."""
    values = dict(values)
    values["eval_episodes"] = 1
    values["warmup_steps"] = max(int(values.get("warmup_steps", 5000)), 1)
    values["eval_every"] = int(values.get("model_train_freq", 250)) * chunks
    values["total_steps"] = values["warmup_steps"] + values["eval_every"]
    return values


def cell(algo: str, env: str, n: int, overrides: dict, chunks: int, repeats: int, batching: str) -> dict:
    """One (algorithm, seed count) cell, in this (fresh) process."""
    import jax
    import numpy as np

    from jaxdyna.config import load_yaml, resolve, stack_hparams
    from jaxdyna.sweep import batched, resolve_batching, run_keys
    from jaxdyna.train import make_train

    cfg, hp = resolve(one_period({**load_yaml(HERE.parent.parent / "configs" / algo / f"{env}.yaml"), **overrides},
                                 chunks))
    prog = make_train(cfg, num_evals=1)
    keys, hps = run_keys(np.arange(n)), stack_hparams([hp] * n)
    t0 = time.perf_counter()
    init = jax.jit(batched(prog.init, batching)).lower(keys, hps).compile()
    states = jax.block_until_ready(init(keys, hps))
    t1 = time.perf_counter()
    advance = jax.jit(batched(prog.advance, batching)).lower(states, hps).compile()
    t2 = time.perf_counter()
    med, seconds = timed(advance, states, hps, repeats=repeats)
    plan = advance.memory_analysis()
    planned = (None if plan is None else int(plan.argument_size_in_bytes + plan.output_size_in_bytes
                                               + plan.temp_size_in_bytes))
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend reports memory
        stats = {}
    return {"batching": resolve_batching(batching), "compile_seconds": t2 - t0,
            "init_compile_and_run_seconds": t1 - t0, "advance_compile_seconds": t2 - t1,
            "advance_seconds": seconds, "advance_seconds_median": med, "timed_env_steps_per_seed": cfg.eval_every,
            "env_steps_per_second": n * cfg.eval_every / med, "device_peak_bytes": stats.get("peak_bytes_in_use"),
            "xla_planned_bytes": planned, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def _gib(x) -> str:
    return "—" if x is None else f"{x / 2**30:.2f}"


def save(result: dict, out: Path, name: str, command: str) -> None:
    """JSON, Markdown table and plot of the cells measured so far (each written atomically)."""
    from jaxdyna.io import write_json, write_text

    write_json(out / f"{name}.json", result)
    cells = result["cells"]
    lines = md_header(f"Seed scaling on Brax {result['env']}", command, result["provenance"]) + [
        "", f"Settings: configs/<algo>/{result['env']}.yaml with overrides {result['overrides'] or 'none'}; "
        f"timed one evaluation period of {result['chunks']} model_train_freq chunk(s) per `advance` "
        f"(median of {result['repeats']}), evaluation included; each cell a fresh process, compile cold."
        + ("" if result["complete"] else " **Incomplete: the run stopped before every cell below ran.**"), "",
        "| algo | seeds | batching | env steps/s total | per seed | vs 1 seed | compile s | device peak GiB "
        "| XLA plan GiB | peak RSS GiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for algo in result["algos"]:
        base = cells.get(f"{algo}/1", {}).get("env_steps_per_second")
        for key, c in cells.items():
            if not key.startswith(f"{algo}/"):
                continue
            n = int(key.split("/")[1])
            if "error" in c:
                lines.append(f"| {algo} | {n} | | failed: {c['error']} | | | | | | |")
                continue
            sps = c["env_steps_per_second"]
            lines.append(f"| {algo} | {n} | {c['batching']} | {sps:.1f} | {sps / n:.1f} | "
                         + (f"{sps / base:.2f}x" if base else "—")
                         + f" | {c['compile_seconds']:.0f} | {_gib(c['device_peak_bytes'])} | "
                         f"{_gib(c['xla_planned_bytes'])} | {_gib(c['peak_rss_bytes'])} |")
    write_text(out / f"{name}.md", "\n".join(lines) + "\n")
    plot(result, out / f"{name}.png")


def plot(result: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jaxdyna.results import save_figure

    fig, (ax_s, ax_m) = plt.subplots(1, 2, figsize=(10, 4), dpi=130)
    for algo in result["algos"]:
        rows = sorted((int(k.split("/")[1]), c) for k, c in result["cells"].items()
                      if k.startswith(f"{algo}/") and "error" not in c)
        if not rows:
            continue
        ns = [n for n, _ in rows]
        line, = ax_s.plot(ns, [c["env_steps_per_second"] for _, c in rows], marker="o", label=algo)
        if ns[0] == 1:                        # what N seeds would give at N times one seed's speed
            base = rows[0][1]["env_steps_per_second"]
            ax_s.plot(ns, [base * n for n in ns], linestyle=":", color=line.get_color(), alpha=0.5)
        mem = [(c["device_peak_bytes"] or c["peak_rss_bytes"]) / 2**30 for _, c in rows]
        ax_m.plot(ns, mem, marker="o", color=line.get_color(), label=algo)
    memory_kind = "device peak" if any(c.get("device_peak_bytes") for c in result["cells"].values()) \
        else "process peak RSS"
    ticks = sorted({int(k.split("/")[1]) for k in result["cells"]})
    for ax, ylabel in ((ax_s, "env steps/s, all seeds together (dotted: linear)"), (ax_m, f"GiB ({memory_kind})")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        lo, hi = ax.get_ylim()                # label the minor ticks only where no decade is marked
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter() if hi / lo > 10 else
                                     matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        ax.set_xlabel("seeds in one program")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    p = result["provenance"]
    fig.suptitle(f"Seed scaling on {result['env']} ({p['device']})", fontsize=9)
    save_figure(fig, path, f"{result['command']} | {p['git_revision']}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="hopper")
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--seeds", default="1,2,4,8,16", help="seed counts (default 1,2,4,8,16)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, every algo")
    ap.add_argument("--chunks", type=int, default=1, help="model_train_freq chunks per timed advance (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed advance calls per cell (default 3)")
    ap.add_argument("--batching", default="auto", choices=("auto", "vmap", "map"))
    ap.add_argument("--timeout", type=float, default=None, help="seconds per cell before it is recorded as failed")
    ap.add_argument("--out", default="results/scaling")
    ap.add_argument("--name", default="cpu")
    ap.add_argument("--cell", help=argparse.SUPPRESS)            # the child: ALGO/N
    args = ap.parse_args(argv)

    from jaxdyna.config import ConfigError, load_yaml, parse_set, resolve

    try:
        overrides = parse_set(args.set)
    except ConfigError as e:
        ap.error(f"--set: {e}")
    seeds = positive_ints(ap, "--seeds", args.seeds)
    if args.cell:
        algo, n = args.cell.split("/")
        print(json.dumps(cell(algo, args.env, int(n), overrides, args.chunks, args.repeats, args.batching)))
        return 0
    algos = args.algos.split(",")
    for algo in algos:                        # every config must resolve before any cell runs
        path = HERE.parent.parent / "configs" / algo / f"{args.env}.yaml"
        if not path.is_file():
            ap.error(f"--algos/--env: no config {path.relative_to(HERE.parent.parent)}; algos: {', '.join(ALGOS)}")
        try:
            resolve(one_period({**load_yaml(path), **overrides}, args.chunks))
        except ConfigError as e:
            ap.error(f"{algo}: {e}")

    from jaxdyna.io import provenance

    command = "python benchmarks/scaling.py " + " ".join(shlex.quote(a) for a in argv)
    out = Path(args.out)
    result = {"command": command, "provenance": provenance(command), "env": args.env, "algos": algos,
              "seeds": seeds, "overrides": overrides, "chunks": args.chunks, "repeats": args.repeats,
              "complete": False, "cells": {}}
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    for algo in algos:
        for n in seeds:
            cmd = [sys.executable, str(HERE), "--cell", f"{algo}/{n}", "--env", args.env, "--chunks", str(args.chunks),
                   "--repeats", str(args.repeats), "--batching", args.batching] + [f"--set={s}" for s in args.set]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
                if proc.returncode == 0:
                    c = json.loads(proc.stdout.strip().splitlines()[-1])
                else:
                    lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
                    c = {"error": lines[-1][:300]}
            except subprocess.TimeoutExpired:
                c = {"error": f"over the {args.timeout:.0f} s timeout"}
            result["cells"][f"{algo}/{n}"] = c
            print(f"{algo} x {n}: " + (c["error"] if "error" in c else
                  f"{c['env_steps_per_second']:.1f} env steps/s, compile {c['compile_seconds']:.0f} s"), flush=True)
            save(result, out, args.name, command)
    result["complete"] = True
    save(result, out, args.name, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
