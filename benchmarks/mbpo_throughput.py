"""MBPO throughput on Brax hopper: env steps/s for 1 and N vmapped seeds, and where the time goes.

Runs the MBPO paper's Hopper settings (configs/mbpo/hopper.yaml) with the overrides given on the
command line (CPU needs a reduced budget), and times, on the current device:
  * the whole compiled loop (`advance` over the timed env steps) for 1 and N vmapped seeds;
  * each process alone, as its own jitted function on the same state: fit_model (one refit),
    imagine (one round of branched rollouts), learn (updates_per_step x model_train_freq updates)
    and collect (model_train_freq env steps), giving each one's share of a model_train_freq chunk.
Writes JSON (raw timings, medians over repeats, settings, provenance) and a Markdown table.

    python benchmarks/mbpo_throughput.py --out results/mbpo_throughput --name cpu \
        --set rollout_batch_size=10000 --set max_rollout_length=5 --set rollout_max_len=5
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from _timing import timed

from jaxdyna import buffer as rb
from jaxdyna import model as mdl
from jaxdyna.config import as_arrays, load_yaml, parse_set, resolve, stack_hparams, to_dict
from jaxdyna.envs import make_env
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.networks import sample_action
from jaxdyna.sac import learn, make_nets
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

    values = {**load_yaml(args.config), **parse_set(args.set)}
    values["eval_episodes"] = 1
    values["warmup_steps"] = max(int(values.get("warmup_steps", 5000)), 1)
    values["eval_every"] = int(values.get("model_train_freq", 250)) * args.chunks
    values["total_steps"] = values["warmup_steps"] + values["eval_every"]
    cfg, hp = resolve(values)
    hpa = as_arrays(hp)
    prog = make_train(cfg, num_evals=1)
    result = {"settings": to_dict(cfg, hp), "overrides": parse_set(args.set), "timed_env_steps": cfg.eval_every,
              "repeats": args.repeats, "provenance": provenance(command),
              "note": "evaluation (1 episode of up to episode_length steps) is inside the timed advance",
              "seeds": {}, "pieces": {}}

    # --- the whole loop, 1 and N vmapped seeds ------------------------------------------
    for n in [int(s) for s in args.seeds.split(",")]:
        keys, hps = run_keys(np.arange(n)), stack_hparams([hp] * n)
        states = jax.jit(jax.vmap(prog.init))(keys, hps)
        t0 = time.perf_counter()
        adv = jax.jit(jax.vmap(prog.advance)).lower(states, hps).compile()
        compile_s = time.perf_counter() - t0
        med, ts = timed(lambda: adv(states, hps), repeats=args.repeats)
        result["seeds"][str(n)] = {"compile_seconds": compile_s, "advance_seconds_median": med, "advance_seconds": ts,
                                   "env_steps_per_second_total": n * cfg.eval_every / med,
                                   "env_steps_per_second_per_seed": cfg.eval_every / med}
        print(f"{n} seed(s): {n * cfg.eval_every / med:.1f} env steps/s total, compile {compile_s:.0f}s", flush=True)
        del states
        save(result, cfg, args, command, complete=False)

    # --- each process alone, on one seed's state after warm-up -----------------------------
    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size)
    state = jax.jit(prog.init)(jax.random.PRNGKey(0), hpa)
    key = jax.random.PRNGKey(1)

    fit = jax.jit(lambda s: mdl.fit_model(cfg, ens, s.model, s.real, key, hpa))
    model, fit_metrics = fit(state)
    state = state.replace(model=model)
    result["model_epochs_in_timed_refit"] = int(fit_metrics["model_epochs"])
    dynamics = mdl.make_dynamics(cfg, ens, env)
    policy = lambda agent: (lambda o, k: sample_action(nets.actor, agent.actor, o, k))

    def imagine(s):
        start = rb.buffer_sample(s.real, key, cfg.rollout_batch_size)
        return mdl.imagine(cfg, dynamics, s.model, start, policy(s.agent), jnp.int32(cfg.max_rollout_length), key)

    def learn_chunk(s):
        def one(agent, k):
            return learn(nets, agent, rb.buffer_sample(s.real, k, cfg.batch_size), k, hpa)[0], None
        n = cfg.updates_per_step * cfg.chunk_steps
        return jax.lax.scan(one, s.agent, jax.random.split(key, n))[0]

    collect_cfg = dataclasses.replace(cfg, algo="sac", model="none", warmup_steps=cfg.chunk_steps * cfg.num_envs,
                                      total_steps=cfg.chunk_steps * cfg.num_envs + cfg.eval_every)
    collect_prog = make_train(collect_cfg, num_evals=1)
    collect = jax.jit(lambda k: collect_prog.init(k, hpa).real)   # its warm-up = random-action collection
    pieces = {"fit_model (one refit)": (fit, state), "imagine (one round)": (jax.jit(imagine), state),
              f"learn ({cfg.updates_per_step} x {cfg.chunk_steps} updates)": (jax.jit(learn_chunk), state),
              f"collect ({cfg.chunk_steps} env steps, random actions)": (collect, key)}
    total = 0.0
    for name, (fn, arg) in pieces.items():
        med, ts = timed(fn, arg, repeats=args.repeats)
        result["pieces"][name] = {"seconds_median": med, "seconds": ts}
        total += med
        print(f"{name}: {med:.3f}s", flush=True)
        for v in result["pieces"].values():
            v["share_of_chunk"] = v["seconds_median"] / total
        save(result, cfg, args, command, complete=False)
    save(result, cfg, args, command, complete=True)
    return 0


def save(result, cfg, args, command, complete: bool) -> None:
    """Write the JSON and Markdown table for what has been measured so far (atomically)."""
    result["complete"] = complete
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p = result["provenance"]
    lines = [f"# MBPO throughput on Brax {cfg.env} ({cfg.backend})", "",
             f"Command: `{command}`  ", f"Git revision: `{p['git_revision']}`; device: {p['device']}; versions: "
             + ", ".join(f"{k} {v}" for k, v in p["versions"].items()), "",
             f"Settings: configs/mbpo/{cfg.env}.yaml with overrides {result['overrides'] or 'none'}; timed "
             f"{cfg.eval_every} env steps per `advance` (median of {result['repeats']}), evaluation included."
             + ("" if result["complete"] else " **Incomplete: the run stopped before every stage below ran.**"), "",
             "| vmapped seeds | compile s | env steps/s total | env steps/s per seed |", "|---|---|---|---|"]
    for n, r in result["seeds"].items():
        lines.append(f"| {n} | {r['compile_seconds']:.0f} | {r['env_steps_per_second_total']:.2f} | "
                     f"{r['env_steps_per_second_per_seed']:.2f} |")
    lines += ["", f"Where one model_train_freq chunk goes (1 seed, each process timed alone; the timed refit ran "
              f"{result.get('model_epochs_in_timed_refit', '?')} epochs):", "", "| process | seconds | share |", "|---|---|---|"]
    for name, v in result["pieces"].items():
        lines.append(f"| {name} | {v['seconds_median']:.3f} | {100 * v['share_of_chunk']:.0f}% |")
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
