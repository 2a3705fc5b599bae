"""Compile seconds per algorithm: cold, and again from JAX's persistent compilation cache.

For each algorithm's shipped config on one env, a fresh Python process builds the training
program the way a sweep group does (`init` and `advance`, vmapped over `--seeds` runs) and times
tracing + lowering and XLA compilation separately, with the persistent compilation cache in an
empty directory (cold). A second fresh process then builds the same programs against that
directory (warm: what a repeated run or sweep group pays). Writes JSON and a Markdown table.

    python benchmarks/compile_time.py --out results/compile_time --name cpu

`--parts` also compiles each part of the loop (`make_train(...).parts`) on its own, to show
which part the compiler spends its time on.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGOS = ("sac", "dyna", "mbpo", "mve", "steve")


def measure(algo: str, env: str, seeds: int, parts: bool, stored: bool = False) -> dict:
    """Trace+lower and compile seconds of this process's programs (run in a fresh process);
    `stored`: load them from the program store instead of tracing (filling it if empty)."""
    import jax
    import numpy as np

    from jaxdyna.config import as_arrays, load_yaml, resolve, stack_hparams
    from jaxdyna.sweep import run_keys
    from jaxdyna.train import make_train

    values = load_yaml(f"configs/{algo}/{env}.yaml")
    cfg, hp = resolve(values)
    prog = make_train(cfg, num_evals=1)
    keys, hps = run_keys(np.arange(seeds)), stack_hparams([hp] * seeds)
    state = None
    out = {}

    def timed_build(name, fn, *args):
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        out[name] = {"trace_lower_seconds": t1 - t0, "compile_seconds": t2 - t1}
        return compiled

    if stored:                   # the program store (jaxdyna/programs.py): load, then XLA from its cache
        from jaxdyna import programs

        what = repr(cfg)
        for name, fn, args_ in (("init", prog.init, (keys, hps)), ("advance", prog.advance, None)):
            t0 = time.perf_counter()
            built = programs.build(name, what, lambda: jax.vmap(fn), args_ or (state, hps))
            t1 = time.perf_counter()
            built.compile(*(args_ or (state, hps)))
            t2 = time.perf_counter()
            if name == "init":
                state = built.out_shapes
            out[name] = {"trace_lower_seconds": t1 - t0, "compile_seconds": t2 - t1, "loaded": built.loaded}
        return out
    timed_build("init", jax.vmap(prog.init), keys, hps)
    state = jax.eval_shape(jax.vmap(prog.init), keys, hps)
    timed_build("advance", jax.vmap(prog.advance), state, hps)
    if parts:
        one = jax.eval_shape(prog.init, keys[0], as_arrays(hp))
        k = keys[0]
        p = prog.parts
        timed_build("part collect", lambda s, k: p.collect(s, k, False)[0], one, k)
        timed_build("part learn", lambda s, k: p.learn(s, k, as_arrays(hp))[0], one, k)
        timed_build("part evaluate", p.evaluate, one, k)
        if cfg.model == "learned":
            timed_build("part fit_model", lambda s, k: p.fit_model(s, k, as_arrays(hp))[0], one, k)
        if cfg.algo in ("dyna", "mbpo"):
            timed_build("part imagine", lambda s, k: p.imagine(s, k, k, as_arrays(hp))[0], one, k)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="inverted_pendulum")
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--seeds", type=int, default=2, help="vmapped runs per program (default 2)")
    ap.add_argument("--parts", action="store_true", help="also compile each part of the loop alone")
    ap.add_argument("--out", default="results/compile_time")
    ap.add_argument("--name", default="cpu")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--stored", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:                                      # the child: one algorithm, one cache directory
        import jax

        jax.config.update("jax_compilation_cache_dir", args.cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        print(json.dumps(measure(args.one, args.env, args.seeds, args.parts, args.stored)))
        return 0

    from jaxdyna.io import provenance

    command = "python benchmarks/compile_time.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    result = {"env": args.env, "seeds": args.seeds, "provenance": provenance(command), "algos": {}}
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    for algo in args.algos.split(","):
        with tempfile.TemporaryDirectory() as cache:
            runs = {}
            # cold: trace + compile from nothing; warm: the same again from the compilation cache;
            # (untimed: fill the program store, as a sweep's first run does); stored: load + cache
            for phase in ("cold", "warm", "fill", "stored"):
                cmd = [sys.executable, __file__, "--one", algo, "--cache", cache, "--env", args.env,
                       "--seeds", str(args.seeds)] + (["--parts"] if args.parts and phase == "cold" else []) \
                    + (["--stored"] if phase in ("fill", "stored") else [])
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    raise SystemExit(f"{algo} {phase}: {proc.stderr.strip().splitlines()[-1]}")
                runs[phase] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(algo, phase, {k: round(v["trace_lower_seconds"] + v["compile_seconds"], 1)
                                    for k, v in runs[phase].items()}, flush=True)
            runs.pop("fill")
        result["algos"][algo] = runs
        save(result, args, command)
    return 0


def save(result, args, command) -> None:
    from _timing import md_header

    from jaxdyna.io import write_json, write_text

    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    lines = md_header(f"Compile seconds per algorithm ({result['env']}, {result['seeds']} vmapped runs)", command, p) + [
             "", "Each cell: trace + lower (stored: load) / XLA compile seconds, each phase a fresh process; warm = "
             "the same programs again with the persistent compilation cache the cold process filled; stored = "
             "loaded from the program store (`jaxdyna/programs.py`, what a sweep group built before pays), "
             "compiled from the cache.", "",
             "| algo | init cold | advance cold | init warm | advance warm | init stored | advance stored "
             "| total cold | total warm | total stored |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for algo, runs in result["algos"].items():
        cells = [f"{runs[ph][prog]['trace_lower_seconds']:.1f} / {runs[ph][prog]['compile_seconds']:.1f}"
                 if ph in runs else "—" for ph in ("cold", "warm", "stored") for prog in ("init", "advance")]
        totals = [sum(v["trace_lower_seconds"] + v["compile_seconds"] for k, v in runs[ph].items()
                      if not k.startswith("part")) if ph in runs else float("nan") for ph in ("cold", "warm", "stored")]
        lines.append(f"| {algo} | " + " | ".join(cells) + " | " + " | ".join(f"{t:.1f}" for t in totals) + " |")
    partrows = [(a, k, v) for a, r in result["algos"].items() for k, v in r["cold"].items() if k.startswith("part")]
    if partrows:
        lines += ["", "Each part of the loop compiled alone (1 run, cold): trace + lower / compile seconds", "",
                  "| algo | part | seconds |", "|---|---|---|"]
        lines += [f"| {a} | {k[5:]} | {v['trace_lower_seconds']:.1f} / {v['compile_seconds']:.1f} |" for a, k, v in partrows]
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
