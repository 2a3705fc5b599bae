"""Compile seconds per algorithm: cold, and again from JAX's persistent compilation cache.

For each algorithm's shipped config on one env, a fresh Python process builds the training
program the way a sweep group does (`init` and `advance`, vmapped over `--seeds` runs) and times
tracing + lowering and XLA compilation separately, with the persistent compilation cache in an
empty directory (cold). A second fresh process then builds the same programs against that
directory (warm: what a repeated run or sweep group pays). Writes JSON and a Markdown table.

    python benchmarks/compile_time.py --out results/compile_time --name cpu

`--parts` also compiles each part of the loop (`make_train(...).parts`) on its own, to show
which part the compiler spends its time on. `--passes` adds one cold build per algorithm with
XLA's pass timing logged (`TF_CPP_VMODULE=hlo_pass_pipeline=1`; not counted in the medians) and
reports the seconds per HLO pass: what of the XLA compile is HLO optimisation, the rest being
code generation. `--programs` instead compiles the CLI's three programs (`init`, `chunk`,
`end_period`) one after another in each fresh process and reports wall and CPU seconds per
program (NAME_programs.md / .json): which program the compiler's work goes to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALGOS = ("sac", "dyna", "mbpo", "mve", "steve")


def cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) this process has used so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(algo: str, env: str, seeds: int, parts: bool, mode: str = "serial") -> dict:
    """Seconds to build this process's programs (run in a fresh process), batched over the runs as
    the CLI batches them on this backend (`lax.map` on CPU, `vmap` on accelerators).

    serial: trace+lower, then XLA compile, of `init` and then `advance`, timed apart (where the time
        goes); stored: through the program store (jaxdyna/programs.py: load, or trace and fill
        it), each program timed apart; cli: the sweep runner's own build, wall seconds from nothing
        to its programs ready (`init` compiling on a thread while `chunk` is traced and compiled,
        then `end_period` on that thread; all exported to the program store on the way);
        cli_serial: the same, one after the other. (`serial` and `stored` time `advance`, one
        whole evaluation period: `chunk` and `end_period` together.)
    """
    import jax
    import numpy as np

    from jaxdyna import programs
    from jaxdyna.config import as_arrays, load_yaml, resolve, stack_hparams
    from jaxdyna.runner import build_programs
    from jaxdyna.sweep import batched, resolve_batching, run_keys
    from jaxdyna.train import make_train

    t_start = time.perf_counter()
    values = load_yaml(f"configs/{algo}/{env}.yaml")
    cfg, hp = resolve(values)
    prog = make_train(cfg, num_evals=1)
    keys, hps = run_keys(np.arange(seeds)), stack_hparams([hp] * seeds)
    state = None
    out = {"batching": resolve_batching("auto")}
    what = repr(cfg)

    def timed_build(name, fn, *args):
        t0 = time.perf_counter()
        lowered = jax.jit(fn).lower(*args)
        t1, c1 = time.perf_counter(), cpu_seconds()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        out[name] = {"trace_lower_seconds": t1 - t0, "compile_seconds": t2 - t1, "compile_cpu": cpu_seconds() - c1}
        return compiled

    if mode in ("cli", "cli_serial"):
        t0, c0 = time.perf_counter(), cpu_seconds()
        init_fn = programs.build("init", what, lambda: batched(prog.init), (keys, hps))
        state = init_fn.out_shapes

        def build_end(chunk_shapes):
            _, (last, ended) = chunk_shapes
            args = (state, (ended,) * cfg.chunks_per_eval, last)
            return programs.build("end_period", what, lambda: batched(prog.end_period), args).compile(*args)

        build_programs(init_fn, (keys, hps), lambda: programs.build("chunk", what, lambda: batched(prog.chunk),
                                                                    (state, hps)),
                       (state, hps), build_end, concurrent=mode == "cli")
        out[mode] = {"wall_seconds": time.perf_counter() - t0, "setup_seconds": t0 - t_start,
                     "cpu": cpu_seconds() - c0}
        out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return out
    if mode == "programs":                        # each of the CLI's three programs compiled alone
        timed_build("init", batched(prog.init), keys, hps)
        state = jax.eval_shape(batched(prog.init), keys, hps)
        _, (last, ended) = jax.eval_shape(batched(prog.chunk), state, hps)
        timed_build("chunk", batched(prog.chunk), state, hps)
        timed_build("end_period", batched(prog.end_period), state, (ended,) * cfg.chunks_per_eval, last)
        return out
    if mode == "stored":
        for name, fn, args_ in (("init", prog.init, (keys, hps)), ("advance", prog.advance, None)):
            t0 = time.perf_counter()
            built = programs.build(name, what, lambda: batched(fn), args_ or (state, hps))
            t1 = time.perf_counter()
            built.compile(*(args_ or (state, hps)))
            t2 = time.perf_counter()
            if name == "init":
                state = built.out_shapes
            out[name] = {"trace_lower_seconds": t1 - t0, "compile_seconds": t2 - t1, "loaded": built.loaded}
        return out
    timed_build("init", batched(prog.init), keys, hps)
    state = jax.eval_shape(batched(prog.init), keys, hps)
    timed_build("advance", batched(prog.advance), state, hps)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
    ap.add_argument("--passes", action="store_true",
                    help="also time XLA's HLO passes (one more cold build per algorithm, not in the medians)")
    ap.add_argument("--programs", action="store_true",
                    help="only compile the CLI's three programs (init, chunk, end_period) one by one, each in "
                         "a fresh process with an empty cache, wall and CPU seconds apart; writes NAME_programs.*")
    ap.add_argument("--out", default="results/compile_time")
    ap.add_argument("--name", default="cpu")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="serial", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1,
                    help="cold builds per algorithm, serial and as the CLI builds, alternating (default 1)")
    args = ap.parse_args(argv)
    if args.one:                                      # the child: one algorithm, one cache directory
        import jax

        jax.config.update("jax_compilation_cache_dir", args.cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        print(json.dumps(measure(args.one, args.env, args.seeds, args.parts, args.mode)))
        return 0

    from jaxdyna.io import provenance

    command = "python benchmarks/compile_time.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    result = {"env": args.env, "seeds": args.seeds, "repeats": args.repeats, "cores": os.cpu_count(),
              "provenance": provenance(command), "algos": {}}
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}

    def child(algo, cache, mode, parts=False, passes=False):
        cmd = [sys.executable, __file__, "--one", algo, "--cache", cache, "--env", args.env,
               "--seeds", str(args.seeds), "--mode", mode] + (["--parts"] if parts else [])
        logged = {"TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "hlo_pass_pipeline=1"} if passes else {}
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, **logged})
        if proc.returncode != 0:
            raise SystemExit(f"{algo} {mode}: {proc.stderr.strip().splitlines()[-1]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if passes:
            out["hlo_pass_seconds"] = pass_seconds(proc.stderr)
        print(algo, mode, {k: round(sum(x for n, x in v.items() if isinstance(x, float) and "cpu" not in n), 1)
                           for k, v in out.items() if isinstance(v, dict)}, flush=True)
        return out

    if args.programs:
        for algo in args.algos.split(","):
            runs = []
            for _ in range(args.repeats):
                with tempfile.TemporaryDirectory() as cache:
                    runs.append(child(algo, cache, "programs"))
            result["algos"][algo] = runs
            save_programs(result, args, command)
        return 0
    for algo in args.algos.split(","):
        runs = {"cold": [], "cli": [], "cli_serial": []}
        for r in range(args.repeats):                 # each cold build in its own empty cache
            for mode in ("serial", "cli", "cli_serial"):
                with tempfile.TemporaryDirectory() as cache:
                    runs["cold" if mode == "serial" else mode].append(
                        child(algo, cache, mode, parts=args.parts and r == 0 and mode == "serial"))
        if args.passes:
            with tempfile.TemporaryDirectory() as cache:
                runs["passes"] = child(algo, cache, "serial", passes=True)
        with tempfile.TemporaryDirectory() as cache:
            # warm: traced again, XLA from the compilation cache the first process filled;
            # (untimed: fill the program store, as a sweep's first run does); stored: load + cache
            child(algo, cache, "serial")
            runs["warm"] = child(algo, cache, "serial")
            child(algo, cache, "stored")
            runs["stored"] = child(algo, cache, "stored")
        result["algos"][algo] = runs
        save(result, args, command)
    return 0


_PASS_LINE = re.compile(r"HLO pass: (\S+) time: ([\d.]+) (us|ms|s) \(")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def pass_seconds(log: str) -> dict[str, float]:
    """Seconds per HLO pass, summed over every module and call, from XLA's
    `hlo_pass_pipeline=1` log ("HLO pass: NAME time: 1.2 ms (1200 us) ..."), largest first."""
    total: dict[str, float] = {}
    for m in _PASS_LINE.finditer(log):
        total[m.group(1)] = total.get(m.group(1), 0.0) + float(m.group(2)) * _UNIT[m.group(3)]
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def _total(run: dict) -> float:
    return sum(v["trace_lower_seconds"] + v["compile_seconds"] for k, v in run.items()
               if k in ("init", "advance"))


def _rss(runs: list) -> str:
    from statistics import median

    return f"{median(r['peak_rss_bytes'] for r in runs) / 2**30:.2f}"


PROGRAMS = ("init", "chunk", "end_period")


def save_programs(result, args, command) -> None:
    """NAME_programs.json / .md: trace + lower, XLA compile and XLA CPU seconds of each program."""
    from statistics import median

    from _timing import md_header

    from jaxdyna.io import write_json, write_text

    out = Path(args.out)
    write_json(out / f"{args.name}_programs.json", result)
    lines = md_header(f"The CLI's programs compiled one by one ({result['env']}, {result['seeds']} runs per "
                      "program)", command, result["provenance"]) + [
        "", f"Medians of {result['repeats']} cold build(s), each a fresh process with an empty compilation cache "
        "compiling `init`, `chunk` and `end_period` one after another. Cells: trace + lower seconds / XLA compile "
        "seconds (wall) / XLA compile CPU seconds (user + system, every thread).", "",
        "| algo | " + " | ".join(f"`{p}`" for p in PROGRAMS) + " | XLA CPU s, all three |",
        "|---|" + "---|" * (len(PROGRAMS) + 1)]
    for algo, runs in result["algos"].items():
        med = {p: {k: median(r[p][k] for r in runs) for k in ("trace_lower_seconds", "compile_seconds", "compile_cpu")}
               for p in PROGRAMS}
        cells = [f"{m['trace_lower_seconds']:.1f} / {m['compile_seconds']:.1f} / {m['compile_cpu']:.1f}"
                 for m in med.values()]
        total = median(sum(r[p]["compile_cpu"] for p in PROGRAMS) for r in runs)
        lines.append(f"| {algo} | " + " | ".join(cells) + f" | {total:.1f} |")
    write_text(out / f"{args.name}_programs.md", "\n".join(lines) + "\n")


def save(result, args, command) -> None:
    from statistics import median

    from _timing import md_header

    from jaxdyna.io import write_json, write_text

    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    some = next(iter(result["algos"].values()))
    lines = md_header(f"Compile seconds per algorithm ({result['env']}, {result['seeds']} runs per program, "
                      f"batched with {some['cold'][0]['batching']})", command, p) + [
        "", f"Medians of {result['repeats']} cold build(s) per column, each a fresh process with an empty "
        "compilation cache, serial and CLI builds alternating. serial: trace + lower / XLA compile seconds of "
        "`init`, then `advance` (one evaluation period); CLI: wall seconds from nothing to the programs ready as "
        "the sweep runner builds them (`init` compiles on a thread while `chunk` is traced and compiled, then "
        "`end_period` on that thread; exported to the "
        "program store on the way). warm: traced again, XLA from the cache a first process filled; stored: "
        "loaded from the program store and compiled from the cache (what a repeated run or sweep group pays).",
        "CLI one by one: the CLI's build with `init` compiled before `chunk` is traced (what the CLI did "
        "before the overlap). CLI CPU: the CPU seconds (user + system, every thread) the CLI's cold build "
        "used, and those divided by the cores: the least wall time those cores could take for that work. "
        "Peak RSS: the build process's peak resident memory (median).",
        "", "| algo | init cold | advance cold | total cold, serial | **CLI cold (wall)** | CLI cold, each "
        "| CLI CPU s / per core | CLI one by one | warm | stored | peak RSS GiB: serial / CLI / CLI one by one |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for algo, runs in result["algos"].items():
        cells = [f"{median(r[prog]['trace_lower_seconds'] for r in runs['cold']):.1f} / "
                 f"{median(r[prog]['compile_seconds'] for r in runs['cold']):.1f}" for prog in ("init", "advance")]
        cli = [r["cli"]["wall_seconds"] for r in runs["cli"]]
        one_by_one = [r["cli_serial"]["wall_seconds"] for r in runs["cli_serial"]]
        cpu = median(r["cli"].get("cpu", float("nan")) for r in runs["cli"])
        lines.append(f"| {algo} | {cells[0]} | {cells[1]} | {median(map(_total, runs['cold'])):.1f} | "
                     f"**{median(cli):.1f}** | {', '.join(f'{c:.1f}' for c in cli)} | "
                     f"{cpu:.1f} / {cpu / result['cores']:.1f} | {median(one_by_one):.1f} | "
                     f"{_total(runs['warm']):.1f} | {_total(runs['stored']):.1f} | {_rss(runs['cold'])} / "
                     f"{_rss(runs['cli'])} / {_rss(runs['cli_serial'])} |")
    partrows = [(a, k, v) for a, r in result["algos"].items() for k, v in r["cold"][0].items() if k.startswith("part")]
    if partrows:
        lines += ["", "Each part of the loop compiled alone (1 run, unbatched, first cold build): "
                  "trace + lower / compile seconds", "", "| algo | part | seconds |", "|---|---|---|"]
        lines += [f"| {a} | {k[5:]} | {v['trace_lower_seconds']:.1f} / {v['compile_seconds']:.1f} |" for a, k, v in partrows]
    timed = [(a, r["passes"]) for a, r in result["algos"].items() if "passes" in r]
    if timed:
        lines += ["", "XLA's HLO passes, timed in one more cold build with pass logging (not in the medians above): "
                  "their seconds against the XLA compile seconds of `init` + `advance` in that build (the rest is "
                  "code generation), and the largest passes", "",
                  "| algo | XLA compile s | HLO passes s | largest passes, s |", "|---|---|---|---|"]
        for a, run in timed:
            xla = sum(run[k]["compile_seconds"] for k in ("init", "advance"))
            top = ", ".join(f"{k} {v:.1f}" for k, v in list(run["hlo_pass_seconds"].items())[:6])
            lines.append(f"| {a} | {xla:.1f} | {sum(run['hlo_pass_seconds'].values()):.1f} | {top} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
