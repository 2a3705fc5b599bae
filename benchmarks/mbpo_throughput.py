"""MBPO throughput on Brax hopper: env steps/s for 1 and N vmapped seeds, and where the time goes.

Runs the MBPO paper's Hopper settings (configs/mbpo/hopper.yaml) with the overrides given on the
command line (CPU needs a reduced budget), and times, on the current device:
the whole compiled loop (`advance` over the timed env steps) for 1 and N vmapped seeds. Writes
JSON (raw timings, medians over repeats, settings, provenance) and a Markdown table. Where the
time of one chunk goes, part by part and against its FLOP floor: `benchmarks/flop_floor.py`.

    python benchmarks/mbpo_throughput.py --out results/mbpo_throughput --name cpu \
        --set rollout_batch_size=10000 --set max_rollout_length=5 --set rollout_max_len=5
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

from _timing import md_header, timed
from scaling import one_period

from jaxdyna.config import load_yaml, parse_set, resolve, stack_hparams, to_dict
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.sweep import run_keys
from jaxdyna.train import make_train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/mbpo/hopper.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", default="1,8", help="vmapped seed counts to time (default 1,8)")
    ap.add_argument("--chunks", type=int, default=1, help="model_train_freq chunks per timed advance")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/mbpo_throughput")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    command = "python benchmarks/mbpo_throughput.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    cfg, hp = resolve(one_period({**load_yaml(args.config), **parse_set(args.set)}, args.chunks))
    prog = make_train(cfg, num_evals=1)
    result = {"settings": to_dict(cfg, hp), "overrides": parse_set(args.set), "timed_env_steps": cfg.eval_every,
              "repeats": args.repeats, "provenance": provenance(command),
              "note": "evaluation (1 episode of up to episode_length steps) is inside the timed advance",
              "seeds": {}}

    # --- the whole loop, 1 and N vmapped seeds ------------------------------------------
    for n in [int(s) for s in args.seeds.split(",")]:
        keys, hps = run_keys(np.arange(n)), stack_hparams([hp] * n)
        states = jax.jit(jax.vmap(prog.init))(keys, hps)
        t0 = time.perf_counter()
        adv = jax.jit(jax.vmap(prog.advance)).lower(states, hps).compile()
        compile_s = time.perf_counter() - t0
        med, ts = timed(adv, states, hps, repeats=args.repeats)
        result["seeds"][str(n)] = {"compile_seconds": compile_s, "advance_seconds_median": med, "advance_seconds": ts,
                                   "env_steps_per_second_total": n * cfg.eval_every / med,
                                   "env_steps_per_second_per_seed": cfg.eval_every / med}
        print(f"{n} seed(s): {n * cfg.eval_every / med:.1f} env steps/s total, compile {compile_s:.0f}s", flush=True)
        del states
        save(result, cfg, args, command, complete=False)

    save(result, cfg, args, command, complete=True)
    return 0


def save(result, cfg, args, command, complete: bool) -> None:
    """Write the JSON and Markdown table for what has been measured so far (atomically)."""
    result["complete"] = complete
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    lines = md_header(f"MBPO throughput on Brax {cfg.env} ({cfg.backend})", command, p) + [
             "", f"Settings: configs/mbpo/{cfg.env}.yaml with overrides {result['overrides'] or 'none'}; timed "
             f"{cfg.eval_every} env steps per `advance` (median of {result['repeats']}), evaluation included."
             + ("" if result["complete"] else " **Incomplete: the run stopped before every stage below ran.**"), "",
             "| vmapped seeds | compile s | env steps/s total | env steps/s per seed |", "|---|---|---|---|"]
    for n, r in result["seeds"].items():
        lines.append(f"| {n} | {r['compile_seconds']:.0f} | {r['env_steps_per_second_total']:.2f} | "
                     f"{r['env_steps_per_second_per_seed']:.2f} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
