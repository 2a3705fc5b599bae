"""Resident memory of a sweep on several CPU devices: long executions against short ones.

On a CPU with several devices in the process, XLA's YNNPACK dot fusions (its default for dots)
hold memory that is given back only when the execution that ran them ends: a program that runs for
minutes grows by gigabytes. The sweep runner therefore never runs more than a model refit interval
in one execution: per evaluation period it calls `chunk` once per refit (the env steps up to the
next) and then `end_period` (the evaluation), a chunk of the run being `chunk_evals` periods. The
numbers are identical (`tests/test_sweep.py`, and checked here). This script shows the difference
on the runner's own programs (`make_train(...)`, `lax.map` over each device's runs inside
`shard_map` over the devices, as the CLI builds them):

    one call per chunk        `advance` over `--periods` periods in one execution
    one call per period       `--periods` executions of `advance` over one period
    one call per model refit  the runner now: per period, `chunk` once per refit, then `end_period`
                              (the same as one call per period where a period is one refit: SAC,
                              or `eval_every` equal to `model_train_freq`)
    YNNPACK off               one call per chunk, compiled with `xla_cpu_experimental_ynn_fusion_type=""`
                              (plain XLA dots: the growth stops, but the numbers change and the CPU
                              loop is 5-8% slower, so it is not the default)

Each mode runs in a fresh process (`--xla_force_host_platform_device_count`), RSS sampled every
0.25 s: after `init` (the random warm-up) and the compile (the base), then two rounds of one chunk
each, both measured from the same base. Memory grown in round 1 is kept and reused in round 2 (its
peak stays where round 1 left it): what a mode costs is its peak.

    python benchmarks/cpu_memory.py --out results/cpu_memory --name cpu
    python benchmarks/cpu_memory.py --config configs/mbpo/inverted_pendulum.yaml --runs 2 --periods 1 \
        --eval-every 1000 --modes "one call per period,one call per model refit" --name cpu_mbpo
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

MODES = ("one call per chunk", "one call per period", "one call per model refit", "YNNPACK off")
SAME_NUMBERS = MODES[:3]            # the runner's ways of calling the loop: identical returns (checked)


def rss_gib() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    return kb / 2**20


def growth(samples: list[tuple[float, float]], base: float, start: float, end: float) -> dict:
    """Peak RSS above `base` between `start` and `end` (seconds), and its rate over that time."""
    inside = [r for t, r in samples if start <= t <= end]
    peak = max(inside, default=base)
    return {"peak_gib": peak, "growth_gib": peak - base, "mib_per_s": (peak - base) * 1024 / max(end - start, 1e-9)}


def child(args) -> dict:
    """One mode, measured in this process (the devices were forced by the parent)."""
    import jax
    import numpy as np

    from jaxdyna.config import load_yaml, resolve
    from jaxdyna.runner import _mesh, _over_devices, _put
    from jaxdyna.sweep import batched, run_keys, stack_hparams
    from jaxdyna.train import make_train

    values = load_yaml(args.config)
    values.update(warmup_steps=args.warmup, eval_every=args.eval_every,
                  total_steps=args.warmup + args.eval_every * 2 * args.periods)
    cfg, hp = resolve(values)
    per_call = args.periods if args.child in ("one call per chunk", "YNNPACK off") else 1
    prog = make_train(cfg, num_evals=per_call)
    calls = args.periods // per_call * (cfg.chunks_per_eval + 1 if args.child == "one call per model refit" else 1)
    mesh = _mesh(jax.devices()[:args.devices])
    keys = _put(np.asarray(run_keys(np.arange(args.runs))), mesh)
    hps = jax.tree_util.tree_map(lambda x: _put(np.asarray(x), mesh), stack_hparams([hp] * args.runs))
    over = lambda fn: jax.jit(_over_devices(batched(fn, "map"), mesh))     # noqa: E731
    options = {"xla_cpu_experimental_ynn_fusion_type": ""} if args.child == "YNNPACK off" else None
    state = over(prog.init)(keys, hps)
    if args.child == "one call per model refit":          # the runner's calls: `chunk` per refit, `end_period`
        from jaxdyna.runner import _abstract

        chunk_fn = over(prog.chunk)
        run_chunk = chunk_fn.lower(state, hps).compile()
        _, (last, ended) = _abstract(jax.eval_shape(chunk_fn, state, hps), mesh)
        end_period = over(prog.end_period).lower(state, (ended,) * cfg.chunks_per_eval, last).compile()

        def advance(state, hps):
            ended = []
            for _ in range(cfg.chunks_per_eval):
                state, (last, e) = run_chunk(state, hps)
                ended.append(e)
            return end_period(state, tuple(ended), last)
    else:
        advance = over(prog.advance).lower(state, hps).compile(compiler_options=options)
    jax.block_until_ready(state)

    samples, stop, t0 = [], threading.Event(), time.perf_counter()

    def watch():
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss_gib()))
            time.sleep(0.25)
    base = rss_gib()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rounds, returns = [], []
    for _ in range(2):
        start = time.perf_counter() - t0
        for _ in range(args.periods // per_call):
            state, m = advance(state, hps)
        jax.block_until_ready(state)
        end = time.perf_counter() - t0
        rounds.append({"seconds": end - start, "after_gib": rss_gib(), **growth(samples + [(end, rss_gib())],
                                                                                 base, start, end)})
        returns.append(np.asarray(m["eval_return"]).reshape(args.runs, -1)[:, -1].tolist())
    stop.set()
    watcher.join()
    return {"mode": args.child, "periods_per_call": per_call, "calls_per_round": calls, "base_gib": base,
            "rounds": rounds, "last_eval_returns": returns, "samples": samples}


def run_mode(mode: str, args) -> dict:
    env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "")
                                       + f" --xla_force_host_platform_device_count={args.devices}").strip()}
    cmd = [sys.executable, __file__, "--child", mode, "--config", args.config, "--devices", str(args.devices),
           "--runs", str(args.runs), "--periods", str(args.periods), "--warmup", str(args.warmup),
           "--eval-every", str(args.eval_every)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{mode}: the measuring process failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for r in rows:
        t, rss = zip(*r["samples"])
        ax.plot(t, rss, label=f"{r['mode']} ({r['calls_per_round']} call(s) per round)")
    ax.set_xlabel("seconds since the base was taken (two rounds of the chunk)")
    ax.set_ylabel("resident memory, GiB")
    ax.set_title(textwrap.fill(title, 90), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/sac/inverted_pendulum.yaml")
    ap.add_argument("--devices", type=int, default=2, help="forced CPU devices (at least 2)")
    ap.add_argument("--runs", type=int, default=6, help="runs over the devices (a multiple of --devices)")
    ap.add_argument("--periods", type=int, default=6, help="evaluation periods per chunk")
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    ap.add_argument("--out", default="results/cpu_memory")
    ap.add_argument("--name", default="cpu")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.devices < 2:
        ap.error(f"--devices: must be at least 2 (the growth needs several devices), got {args.devices}")
    if args.runs < 1 or args.runs % args.devices:
        ap.error(f"--runs: must be a positive multiple of --devices ({args.devices}), got {args.runs}")
    for flag, v in (("--periods", args.periods), ("--warmup", args.warmup), ("--eval-every", args.eval_every)):
        if v < 1:
            ap.error(f"{flag}: must be a positive integer, got {v}")
    modes = [m.strip() for m in args.modes.split(",")]
    if bad := [m for m in modes if m not in MODES]:
        ap.error(f"--modes: unknown {', '.join(map(repr, bad))}; allowed: {', '.join(MODES)}")
    if not Path(args.config).is_file():
        ap.error(f"--config: no such file: {args.config}")
    if args.child:
        print(json.dumps(child(args)))
        return 0

    from _timing import md_header

    from jaxdyna.io import provenance, write_json, write_text

    command = "python benchmarks/cpu_memory.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    rows = []
    for mode in modes:
        rows.append(run_mode(mode, args))
        r = rows[-1]
        print(f"{mode}: base {r['base_gib']:.2f} GiB; " + "; ".join(
            f"round {i + 1}: +{x['growth_gib']:.2f} GiB in {x['seconds']:.0f} s" for i, x in enumerate(r["rounds"])),
            flush=True)
    by_mode = {r["mode"]: r for r in rows}
    same = [by_mode[m]["last_eval_returns"] for m in SAME_NUMBERS if m in by_mode]
    if any(r != same[0] for r in same):
        raise SystemExit(f"{', '.join(m for m in SAME_NUMBERS if m in by_mode)} gave different returns")
    result = {"command": command, "provenance": provenance(command), "config": args.config, "devices": args.devices,
              "runs": args.runs, "periods_per_chunk": args.periods, "warmup_steps": args.warmup,
              "eval_every": args.eval_every, "modes": rows}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    title = (f"{args.config}: {args.runs} runs on {args.devices} CPU devices, chunks of {args.periods} "
             f"periods of {args.eval_every} env steps")
    plot(rows, out / f"{args.name}.png", title)
    lines = md_header("Resident memory on several CPU devices: one execution per chunk, per period or per model refit",
                      command, result["provenance"])
    lines += ["", title + f" (`lax.map` over each device's runs). Each mode in a fresh process; RSS sampled "
              "every 0.25 s. Base: after `init` (the random warm-up) and the compile. Growth: the peak above "
              f"the base during a round (one chunk). The runner's modes (one call per chunk, per period, per model refit) give the same returns (checked). Plot: [`{args.name}.png`]({args.name}.png).", "",
              "| mode | calls per chunk | base GiB | round 1: growth GiB (MiB/s) | round 2: growth GiB | "
              "seconds per round | last evaluation returns, round 2 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        r1, r2 = r["rounds"]
        lines.append(f"| {r['mode']} | {r['calls_per_round']} | {r['base_gib']:.2f} | {r1['growth_gib']:.2f} "
                     f"({r1['mib_per_s']:.1f}) | {r2['growth_gib']:.2f} | {r1['seconds']:.0f}, {r2['seconds']:.0f} "
                     f"| {', '.join(f'{v:.0f}' for v in r['last_eval_returns'][1])} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
