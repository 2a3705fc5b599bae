"""Physics step latency per Brax backend: how long one env step takes inside the compiled loop.

On a GPU the MBPO / SAC loop is latency bound: every real env step is one call of the backend's
step function (a chain of small kernels) between the policy and the updates. This times exactly
the step jaxdyna runs (`jaxdyna.envs.env_step`: the backend's step, episode bookkeeping and
auto-reset) for `--batch` envs at once (vmapped seeds or eval episodes), as a `lax.scan` of
`--steps` steps with random actions inside one jitted call; ms per step is the median call time of
`--repeats` calls (after one untimed call) over `--steps`. Compile seconds are per (backend,
batch). A backend that fails (e.g. not installed) is recorded with its error.

    python benchmarks/physics_latency.py --env hopper --backends generalized,mjx --batch 1,8
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from _timing import choice_list, md_header, positive_ints, timed

BACKENDS = ("generalized", "positional", "spring", "mjx")


def measure(env_name: str, backend: str, batch: int, steps: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxdyna.envs import _reset_batch, env_reset, env_step, make_env

    env = make_env(env_name, backend)

    def rollout(key):
        es = env_reset(env, key, batch)

        def body(es, k):
            action = jax.random.uniform(k, (batch, env.action_size), minval=-1.0, maxval=1.0)
            es, trans, _ = env_step(env, es, action, 1000)
            return es, trans.reward

        es, rewards = jax.lax.scan(body, es, jax.random.split(key, steps))
        return jnp.sum(rewards)

    key = jax.random.key(0)
    t0 = time.perf_counter()
    lowered = jax.jit(rollout).lower(key)
    fn = lowered.compile()
    compile_s = time.perf_counter() - t0
    med, all_s = timed(fn, key, repeats=repeats)
    states = jax.eval_shape(lambda k: _reset_batch(env, k, batch), key)      # shapes only: nothing runs
    parts = {"reset": jax.jit(lambda k: _reset_batch(env, k, batch)).lower(key),
             "step": jax.jit(jax.vmap(env.step)).lower(states, jnp.zeros((batch, env.action_size)))}
    return {"backend": backend, "batch": batch, "steps": steps, "compile_seconds": compile_s,
            "step_ops": step_ops(lowered.as_text()),
            # the backend's step alone and one reset alone (`env_step` computes both every step)
            "ops": {k: stablehlo_ops(v.as_text()) for k, v in parts.items()},
            "call_seconds": all_s, "ms_per_step": 1e3 * med / steps,
            "env_steps_per_second": batch * steps / med}


def step_ops(stablehlo: str) -> dict[str, int]:
    """Loops, scatters and gathers in the lowered program (one step's body, plus the reset that the
    scan's setup and every step's auto-reset contain): what a GPU runs as a chain of small kernels,
    each `while` also a round trip to the host for its condition unless XLA knows its trip count."""
    return {op: stablehlo.count(f"stablehlo.{op}") for op in ("while", "scatter", "gather")}


def stablehlo_ops(stablehlo: str) -> dict[str, int]:
    """All StableHLO operations in a lowered program, and its loops, scatters and gathers."""
    return {"all": stablehlo.count("= stablehlo."), **step_ops(stablehlo)}


def save(result: dict, out: Path, name: str) -> None:
    from jaxdyna.io import write_json, write_text

    write_json(out / f"{name}.json", result)
    lines = md_header(f"Physics step latency on Brax {result['env']}", result["command"], result["provenance"]) + [
        "", f"One jitted `lax.scan` of {result['steps']} `env_step` calls (random actions, auto-reset), "
        f"median of {result['repeats']} calls." + ("" if result["complete"] else " **Incomplete.**"), "",
        "| backend | envs at once | ms per step | env steps/s | compile s | while / scatter / gather ops in the program |",
        "|---|---|---|---|---|---|"]
    for c in result["cells"]:
        if "error" in c:
            lines.append(f"| {c['backend']} | {c['batch']} | failed: {c['error']} | | | |")
        else:
            ops = c.get("step_ops")
            lines.append(f"| {c['backend']} | {c['batch']} | {c['ms_per_step']:.3f} | {c['env_steps_per_second']:.0f} "
                         f"| {c['compile_seconds']:.1f} | " + (" / ".join(str(v) for v in ops.values()) if ops else "—")
                         + " |")
    sized = [c for c in result["cells"] if c.get("ops")]
    if sized:
        lines += ["", "The backend's step and one reset, each lowered alone: StableHLO operations in all "
                  "(while / scatter / gather among them). `env_step` computes a reset for every env on every step "
                  "and keeps it where an episode ended.", "",
                  "| backend | envs at once | step: ops (while / scatter / gather) | reset: ops (while / scatter / gather) |",
                  "|---|---|---|---|"]
        for c in sized:
            cell = {k: f"{v['all']} ({v['while']} / {v['scatter']} / {v['gather']})" for k, v in c["ops"].items()}
            lines.append(f"| {c['backend']} | {c['batch']} | {cell['step']} | {cell['reset']} |")
    write_text(out / f"{name}.md", "\n".join(lines) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="hopper")
    ap.add_argument("--backends", default="generalized,mjx", help=f"comma-separated, of {', '.join(BACKENDS)}")
    ap.add_argument("--batch", default="1,8", help="envs stepped at once (default 1,8)")
    ap.add_argument("--steps", type=int, default=200, help="steps per timed call (default 200)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/physics_latency")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    backends = choice_list(ap, "--backends", args.backends, BACKENDS)
    batches = positive_ints(ap, "--batch", args.batch)
    if args.steps < 1 or args.repeats < 1:
        ap.error("--steps/--repeats: must be positive")
    from jaxdyna.envs import check_env_name
    from jaxdyna.config import ConfigError

    try:
        check_env_name(args.env)
    except ConfigError as e:
        ap.error(f"--env: {e}")

    from jaxdyna.io import provenance

    command = "python benchmarks/physics_latency.py " + " ".join(shlex.quote(a) for a in argv)
    result = {"command": command, "provenance": provenance(command), "env": args.env, "steps": args.steps,
              "repeats": args.repeats, "complete": False, "cells": []}
    out = Path(args.out)
    for batch in batches:                     # every backend at the first batch size first
        for backend in backends:
            try:
                c = measure(args.env, backend, batch, args.steps, args.repeats)
            except Exception as e:  # noqa: BLE001 - recorded, the next cell runs
                c = {"backend": backend, "batch": batch, "error": f"{type(e).__name__}: {str(e)[:200]}"}
            result["cells"].append(c)
            print(f"{backend} x {batch}: " + (c["error"] if "error" in c else
                  f"{c['ms_per_step']:.3f} ms/step, compile {c['compile_seconds']:.1f} s"), flush=True)
            save(result, out, args.name)
    result["complete"] = True
    save(result, out, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
