"""How fast jaxdyna's side of the mbrl-lib comparison could be: its FLOP floor, block by block.

Reads a `benchmarks/mbrl_lib_peer.py` result (default `results/mbrl_lib_peer/peer.json`). For each
float32 jaxdyna block it counts the arithmetic the block did, in XLA-counted FLOPs: its SAC updates,
the Adam steps of its refits (the epochs it recorded per refit, each epoch ceil(n_train / batch)
steps at that refit's real rows), the holdout scored after each epoch (its live rows), and one
imagination round per refit. Each part is held to the rate of a chain of matmuls shaped like its
layers, measured in this process as in `benchmarks/flop_floor.py`; env steps, evaluation and
everything else count as free, so the floor is a lower bound. The floor is the run time of an
implementation doing that arithmetic with every FLOP at the chain's rate; mbrl-lib's median run
time over the jaxdyna blocks' median floor is the largest ratio jaxdyna could reach on that run
without doing less arithmetic (bfloat16 matmuls, for one, do less; their blocks are left out).

    taskset -c 0 python benchmarks/peer_floor.py       # one core, one thread, as the peer's blocks
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from _timing import load_average, md_header, median
from flop_floor import chain_rate, flops

from jaxdyna import model as mdl
from jaxdyna.config import as_arrays, load_yaml, resolve
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.train import make_train, real_capacity

ROOT = Path(__file__).resolve().parent.parent


def unit_flops(cfg, hp) -> dict:
    """XLA-counted FLOPs of one SAC update, one model Adam step, one holdout row, one imagination round."""
    prog = make_train(cfg, num_evals=1)
    state = jax.jit(prog.init)(jax.random.PRNGKey(0), hp)
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    ens = mdl.make_ensemble(cfg, state.real.data.obs.shape[-1], state.real.data.action.shape[-1])
    E, b, rows = cfg.ensemble_size, cfg.model_batch_size, 512
    x, y = jnp.zeros((E, b, ens.sizes[0])), jnp.zeros((E, b, ens.out_size))
    return {
        "sac_update": flops(lambda s, k: prog.parts.learn(s, k, hp), state, k1),   # its scan over updates: once
        "model_step": flops(lambda p, o: mdl.model_update(p, o, x, y, jnp.ones((E, b)), ens.weight_decay,
                                                          hp.model_lr, ens.matmul_dtype),
                            state.model.params, state.model.opt),
        "holdout_row": flops(lambda p: mdl._holdout_errors(p, jnp.zeros((rows, ens.sizes[0])),
                                                           jnp.zeros((rows, ens.out_size)), ens.matmul_dtype),
                             state.model.params) / rows,
        "imagination": flops(lambda s, k: prog.parts.imagine(s, k, k2, hp)[0].model_buf, state, k1)
        * cfg.max_rollout_length,
    }


def block_floor(cfg, unit: dict, rates: dict, run: dict) -> dict:
    """The FLOPs of one recorded jaxdyna block and their time at the chain rates."""
    fit = 0.0
    for k, epochs in enumerate(run["model_epochs"]):                       # refit k before chunk k
        _, n_hold, steps = mdl.refit_sizes(cfg, real_capacity(cfg), cfg.warmup_steps + k * cfg.model_train_freq)
        fit += epochs * (steps * unit["model_step"] + n_hold * unit["holdout_row"])
    gflop = {"sac": run["sac_updates"] * unit["sac_update"] / 1e9, "fit": fit / 1e9,
             "imagination": len(run["model_epochs"]) * unit["imagination"] / 1e9}
    secs = {part: g * 1e9 / rates[part] for part, g in gflop.items()}
    floor = sum(secs.values())
    return {"seed": run["seed"], "run_s": run["run_s"], "model_epochs": run["model_epochs"],
            "sac_updates": run["sac_updates"], "gflop": gflop, "floor_s_per_part": secs, "floor_s": floor,
            "run_over_floor": run["run_s"] / floor}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default="results/mbrl_lib_peer/peer.json", help="a mbrl_lib_peer.py result")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per matmul-chain rate")
    ap.add_argument("--out", default="results/mbrl_lib_peer")
    ap.add_argument("--name", default="floor")
    args = ap.parse_args(argv)
    command = "python benchmarks/peer_floor.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    try:
        peer = json.loads(Path(args.peer).read_text())
        settings = peer["settings"]
        runs = [r for r in peer["runs"] if r["side"] == "jaxdyna"]
        mbrl_runs = [r["run_s"] for r in peer["runs"] if r["side"] == "mbrl-lib"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        ap.error(f"--peer: not a mbrl_lib_peer.py result ({e.__class__.__name__}: {e})")
    if not runs or not mbrl_runs:
        ap.error(f"--peer: the result needs a float32 jaxdyna block and a mbrl-lib block; it has "
                 f"{len(runs)} and {len(mbrl_runs)}")
    mbrl = median(mbrl_runs)

    # one thread, as the peer's jaxdyna blocks: read when JAX starts its CPU backend, below
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                               " intra_op_parallelism_threads=1").strip()
    cfg, hp0 = resolve({**load_yaml(ROOT / settings["jaxdyna_config"]), **settings["jaxdyna_overrides"]})
    hp = as_arrays(hp0)
    unit = unit_flops(cfg, hp)
    share = -(-cfg.rollout_batch_size // cfg.num_elites)
    rates = {"sac": chain_rate(1, cfg.batch_size, cfg.critic_hidden[0], args.repeats),
             "fit": chain_rate(cfg.ensemble_size, cfg.model_batch_size, cfg.model_hidden[0], args.repeats),
             "imagination": chain_rate(cfg.num_elites, share, cfg.model_hidden[0], args.repeats, length=4)}
    blocks = [block_floor(cfg, unit, rates, r) for r in runs]
    floor = median([b["floor_s"] for b in blocks])
    result = {"command": command, "provenance": provenance(command), "peer": args.peer,
              "peer_provenance": peer.get("provenance"), "load_average": load_average(),
              "unit_gflop": {k: v / 1e9 for k, v in unit.items()},
              "matmul_chain_gflops": {k: v / 1e9 for k, v in rates.items()}, "blocks": blocks,
              "jaxdyna_run_s_median": median([r["run_s"] for r in runs]), "jaxdyna_floor_s_median": floor,
              "mbrl_run_s_median": mbrl, "largest_ratio_at_the_floor": mbrl / floor}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    lines = md_header("jaxdyna's FLOP floor in the mbrl-lib comparison", command, p)
    lines += ["", f"Blocks from `{args.peer}` (revision {peer.get('provenance', {}).get('git_revision')}). "
              "Matmul-chain rates in this process, one thread (GFLOP/s): "
              + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in rates.items())
              + f"; 1-min load {result['load_average']}.", "",
              "| jaxdyna block (seed) | model epochs per refit | SAC GFLOP | fit GFLOP | imagination GFLOP "
              "| floor s | measured run s | run / floor |", "|---|---|---|---|---|---|---|---|"]
    for b in blocks:
        g = b["gflop"]
        lines.append(f"| {b['seed']} | {b['model_epochs']} | {g['sac']:.0f} | {g['fit']:.0f} | {g['imagination']:.0f} "
                     f"| {b['floor_s']:.1f} | {b['run_s']:.1f} | {b['run_over_floor']:.2f} |")
    lines += ["", f"mbrl-lib's median run: {mbrl:.1f} s. jaxdyna's median floor: {floor:.1f} s. "
              f"**Largest ratio at the floor: {mbrl / floor:.2f}x** (measured: "
              f"{mbrl / result['jaxdyna_run_s_median']:.2f}x)."]
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
