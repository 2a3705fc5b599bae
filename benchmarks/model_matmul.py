"""The ensemble's matmuls in float32 vs bfloat16 (`model_matmul`): time of a refit and of imagination.

Both dtypes start from the same state (the random warm-up does not depend on the dtype) and run the
loop's own parts (`make_train(...).parts`): `fit_model` with early stopping switched off so every
refit runs exactly `--epochs` epochs (the two dtypes would otherwise stop after different numbers
of epochs and their times would not compare), and `imagine` (one round of `rollout_batch_size`
rollouts through the fitted model). The dtypes alternate, the order flipping every repeat, in one
process; medians over repeats. The holdout MSE each refit reaches is reported beside its time as a
check that the cheaper arithmetic fits as well.

    python benchmarks/model_matmul.py --out results/model_matmul --name cpu

Default: the shipped MBPO inverted-pendulum config (7 x 4x200 ensemble, batch 256, 100k one-step
rollouts per refit) after 5,000 random warm-up steps, 10 epochs per refit.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import jax

from _timing import load_average, md_header, median, timed_call

from jaxdyna.config import as_arrays, load_yaml, parse_set, resolve, to_dict
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.train import make_train

DTYPES = ("float32", "bfloat16")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/mbpo/inverted_pendulum.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--warmup", type=int, default=5000, help="random warm-up steps before the timed refit")
    ap.add_argument("--epochs", type=int, default=10, help="epochs per timed refit (early stopping off)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/model_matmul")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    command = "python benchmarks/model_matmul.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    values = {**load_yaml(args.config), **parse_set(args.set), "warmup_steps": args.warmup,
              "model_max_epochs": args.epochs, "model_patience": args.epochs}
    values["total_steps"] = args.warmup + int(values.get("eval_every", 250))
    base, hp0 = resolve(values)
    hp = as_arrays(hp0)
    k_fit, k_start, k_roll = jax.random.split(jax.random.PRNGKey(1), 3)

    progs = {d: make_train(dataclasses.replace(base, model_matmul=d), num_evals=1) for d in DTYPES}
    state = jax.jit(progs["float32"].init)(jax.random.PRNGKey(0), hp)
    fit = {d: jax.jit(p.parts.fit_model) for d, p in progs.items()}
    imagine = {d: jax.jit(p.parts.imagine) for d, p in progs.items()}
    fitted = {}
    for d in DTYPES:                                       # compile, and the state imagination starts from
        fitted[d], m = fit[d](state, k_fit, hp)
        assert int(m["model_epochs"]) == args.epochs, m["model_epochs"]
        jax.block_until_ready(imagine[d](fitted[d], k_start, k_roll, hp))

    times = {d: {"fit": [], "imagine": [], "holdout": []} for d in DTYPES}
    loads = []
    for r in range(args.repeats):
        for d in (DTYPES if r % 2 == 0 else DTYPES[::-1]):
            (_, m), t = timed_call(fit[d], state, k_fit, hp)
            times[d]["fit"].append(t)
            times[d]["holdout"].append(float(m["model_holdout_loss"]))
            times[d]["imagine"].append(timed_call(imagine[d], fitted[d], k_start, k_roll, hp)[1])
        loads.append(load_average())
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{d} fit {times[d]['fit'][-1]:.2f} s imagine {times[d]['imagine'][-1]:.3f} s" for d in DTYPES),
            flush=True)

    summary = {d: {"fit_s": median(times[d]["fit"]), "imagine_s": median(times[d]["imagine"]),
                   "holdout_mse": median(times[d]["holdout"])} for d in DTYPES}
    ratio = {part: summary["float32"][f"{part}_s"] / summary["bfloat16"][f"{part}_s"] for part in ("fit", "imagine")}
    n_real = int(state.real.size)
    result = {"command": command, "provenance": provenance(command), "settings": to_dict(base, hp0),
              "epochs_per_refit": args.epochs, "real_rows": n_real, "repeats": args.repeats,
              "load_average": loads, "times": times, "median": summary, "float32_over_bfloat16": ratio}
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    lines = md_header(f"Ensemble matmuls in float32 vs bfloat16 ({base.env})", command, p)
    lines += ["", f"A refit of {args.epochs} epochs on {n_real} real rows (20% held out) of the "
              f"{base.ensemble_size} x {'x'.join(map(str, base.model_hidden))} ensemble, batch "
              f"{base.model_batch_size}, and one imagination round of {base.rollout_batch_size} rollouts; "
              f"medians of {args.repeats} alternating repeats in one process; 1-min load "
              f"{min(loads)}-{max(loads)}.", "",
              "| | refit s | imagination s | holdout MSE after the refit |", "|---|---|---|---|"]
    for d in DTYPES:
        s = summary[d]
        lines.append(f"| {d} | {s['fit_s']:.2f} | {s['imagine_s']:.3f} | {s['holdout_mse']:.3g} |")
    lines.append(f"| **float32 / bfloat16** | **{ratio['fit']:.2f}x** | **{ratio['imagine']:.2f}x** | |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
