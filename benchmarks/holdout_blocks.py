"""A refit's holdout scored in blocks of rows (the CPU default) against all rows at once.

`fit_model` scores every member on the holdout after each epoch. On a CPU it does so in blocks of
`model.holdout_block_rows` rows, up to the live holdout rows only; on an accelerator, and before
this change everywhere, all `h_max` rows (the holdout's static size) at once. Both modes run here
from the same warmed-up state, the loop's own `fit_model` (`make_train(...).parts`), with early
stopping off so every refit runs exactly `--epochs` epochs; the modes alternate, the order flipping
every repeat, in one process; medians over repeats. The weights, elites and epochs of the two
refits must be identical (checked; the run fails otherwise), and the holdout losses are reported.

    python benchmarks/holdout_blocks.py --out results/holdout_blocks --name cpu

Default: the shipped MBPO inverted-pendulum and hopper configs (7 x 4x200 ensemble, batch 256),
each after 5,000 random warm-up steps, so the refit is one of the run's first. The real buffer holds
the config's `total_steps` (at least the warm-up and one evaluation period): inverted_pendulum's
holdout is then 1,000 live rows of 1,050, hopper's (125k-step run) 1,000 live rows of 5,000.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from unittest import mock

import jax
import jax.numpy as jnp

from _timing import load_average, md_header, median, timed_call

from jaxdyna import model as mdl
from jaxdyna.config import as_arrays, load_yaml, parse_set, resolve, to_dict
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.train import make_train, real_capacity

MODES = ("blocks", "at once")


def measure(path: str, sets: dict, args) -> dict:
    values = {**load_yaml(path), **sets, "warmup_steps": args.warmup,
              "model_max_epochs": args.epochs, "model_patience": args.epochs}
    values["total_steps"] = max(int(values.get("total_steps", 0)), args.warmup + int(values.get("eval_every", 250)))
    cfg, hp0 = resolve(values)
    hp = as_arrays(hp0)
    prog = make_train(cfg, num_evals=1)
    state = jax.jit(prog.init)(jax.random.PRNGKey(0), hp)
    key = jax.random.PRNGKey(1)
    n = min(int(state.real.size), cfg.model_max_train)
    h_max, n_hold, steps = mdl.refit_sizes(cfg, real_capacity(cfg), n)
    # the same program traced twice: the holdout in blocks (the CPU default) and all at once
    # (a new function object each time: JAX caches a trace by the function it traces)
    fit = {"blocks": jax.jit(lambda s, k, h: prog.parts.fit_model(s, k, h)).lower(state, key, hp).compile()}
    with mock.patch.object(mdl, "holdout_block_rows", lambda h_max: h_max):
        fit["at once"] = jax.jit(lambda s, k, h: prog.parts.fit_model(s, k, h)).lower(state, key, hp).compile()
    if mdl.holdout_block_rows(h_max) < h_max and fit["blocks"].as_text() == fit["at once"].as_text():
        raise SystemExit("the two modes compiled to the same program")

    out = {m: fit[m](state, key, hp) for m in MODES}
    (a, ma), (b, mb) = out["blocks"], out["at once"]
    same = lambda x, y: all(bool(jnp.all(p == q)) for p, q in zip(jax.tree_util.tree_leaves(x),
                                                                    jax.tree_util.tree_leaves(y)))
    if not (same(a.model.params, b.model.params) and same(a.model.elites, b.model.elites)
            and int(ma["model_epochs"]) == int(mb["model_epochs"]) == args.epochs):
        raise SystemExit(f"{path}: the two refits differ (weights, elites or epochs)")
    loss_gap = float(jnp.max(jnp.abs(a.model.holdout_loss - b.model.holdout_loss) / b.model.holdout_loss))

    times, loads = {m: [] for m in MODES}, []
    for r in range(args.repeats):
        for m in (MODES if r % 2 == 0 else MODES[::-1]):
            times[m].append(timed_call(fit[m], state, key, hp)[1])
        loads.append(load_average())
        print(f"{cfg.env} repeat {r + 1}/{args.repeats}: "
              + ", ".join(f"{m} {times[m][-1]:.2f} s" for m in MODES), flush=True)
    med = {m: median(times[m]) for m in MODES}
    return {"config": path, "env": cfg.env, "settings": to_dict(cfg, hp0), "real_rows": n, "h_max": h_max,
            "holdout_rows": n_hold, "block_rows": mdl.holdout_block_rows(h_max),
            "steps_per_epoch": steps, "times": times, "median_s": med,
            "at_once_over_blocks": med["at once"] / med["blocks"], "identical_weights": True,
            "holdout_loss_max_relative_gap": loss_gap, "load_average": loads}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=None,
                    help="MBPO config(s) (default: configs/mbpo/inverted_pendulum.yaml and hopper.yaml)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--warmup", type=int, default=5000, help="random warm-up steps before the timed refit")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per timed refit (early stopping off)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/holdout_blocks")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    configs = args.config or ["configs/mbpo/inverted_pendulum.yaml", "configs/mbpo/hopper.yaml"]
    command = "python benchmarks/holdout_blocks.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    rows = [measure(c, parse_set(args.set), args) for c in configs]
    result = {"command": command, "provenance": provenance(command), "epochs_per_refit": args.epochs,
              "warmup_steps": args.warmup, "repeats": args.repeats, "configs": rows}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    lines = md_header("A refit's holdout scored in blocks against all at once", command, result["provenance"])
    lines += ["", f"One refit of {args.epochs} epochs (early stopping off) after {args.warmup} random warm-up "
              f"steps; medians of {args.repeats} alternating repeats in one process. Both modes give "
              "bit-identical weights, elites and epochs (checked).", "",
              "| config | real rows | holdout rows live / padded | block rows | steps per epoch | blocks s | "
              "at once s | **at once / blocks** | holdout loss, largest relative gap | 1-min load |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['config']}` | {r['real_rows']} | {r['holdout_rows']} / {r['h_max']} | {r['block_rows']} "
                     f"| {r['steps_per_epoch']} | {r['median_s']['blocks']:.2f} | {r['median_s']['at once']:.2f} "
                     f"| **{r['at_once_over_blocks']:.2f}x** | {r['holdout_loss_max_relative_gap']:.1e} "
                     f"| {min(r['load_average'])}-{max(r['load_average'])} |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
