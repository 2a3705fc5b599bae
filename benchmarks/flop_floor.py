"""Where one MBPO chunk's time goes, part by part, against its FLOP floor.

For one `model_train_freq` chunk (one refit, one imagination round, `model_train_freq` real steps
with `updates_per_step` SAC updates each) and one evaluation, this times each of the training
loop's own parts (`make_train(...).parts`: the very functions the compiled loop runs) on the
state right after the random warm-up, and counts their FLOPs with XLA's cost analysis.

XLA counts a loop body once, whatever its trip count, so each part's FLOPs are its unit's count
times the number of units it ran: one SAC update (its batch sampling and real/imagined mixing
included) x updates; one ensemble Adam step x (epochs x steps per epoch) plus one holdout scoring
per epoch; one imagined step x rollout length; one policy + physics step x steps run.

The floor of a part is its FLOPs at the rate of a chain of matmuls shaped like the part's own
(the SAC nets' layer, an ensemble layer, an imagination layer), measured in the same process;
the ratio measured / floor says how far the part is from the machine's matmul roofline. Physics
(collect, evaluate) is not matmul-shaped: its ratio is shown but it is latency-bound.

    python benchmarks/flop_floor.py --out results/flop_floor --name cpu

Default settings: mbrl-lib's inverted-pendulum MBPO (`configs/mbpo/inverted_pendulum.yaml`: 7 x
4x200 ensemble, 100k one-step rollouts per 250 steps, 10 SAC updates per step) after 5,000 random
warm-up steps, as in the performance issue.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from _timing import load_average, md_header, timed

from jaxdyna import model as mdl
from jaxdyna.config import as_arrays, load_yaml, parse_set, resolve, to_dict
from jaxdyna.envs import make_env
from jaxdyna.io import provenance, write_json, write_text
from jaxdyna.sac import learn, make_nets, sac_target
from jaxdyna.train import make_train, real_capacity


def flops(fn, *args) -> float:
    """XLA's FLOP count of fn(*args) (every loop body counted once)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))


def chain_rate(batch: int, rows: int, width: int, repeats: int, length: int = 64) -> float:
    """FLOP/s of `length` chained [batch, rows, width] @ [batch, width, width] matmuls."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(k1, (batch, rows, width))
    w = jax.random.normal(k2, (batch, width, width)) / jnp.sqrt(width)
    run = jax.jit(lambda x, w: jax.lax.scan(lambda c, _: (jnp.einsum("bri,bio->bro", c, w), None),
                                            x, None, length=length)[0])
    med, _ = timed(run, x, w, repeats=repeats)
    return length * 2.0 * batch * rows * width * width / med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/mbpo/inverted_pendulum.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--warmup", type=int, default=5000, help="random warm-up steps before the timed chunk")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/flop_floor")
    ap.add_argument("--name", default="cpu")
    args = ap.parse_args(argv)
    command = "python benchmarks/flop_floor.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))

    values = {**load_yaml(args.config), **parse_set(args.set), "warmup_steps": args.warmup}
    values["total_steps"] = args.warmup + int(values.get("eval_every", 250))
    cfg, hp = resolve(values)
    hp = as_arrays(hp)
    prog = make_train(cfg, num_evals=1)
    parts = prog.parts
    env = make_env(cfg.env, cfg.backend)
    nets = make_nets(cfg, env.action_size)
    ens = mdl.make_ensemble(cfg, env.observation_size, env.action_size)
    key = jax.random.PRNGKey(1)
    k_fit, k_start, k_roll, k_learn, k_eval = jax.random.split(key, 5)

    # the state the timed chunk starts from: warm-up done, model fit once, model buffer filled
    state = start = jax.jit(prog.init)(jax.random.PRNGKey(0), hp)
    state, fit_metrics = jax.jit(parts.fit_model)(state, k_fit, hp)
    state, _ = jax.jit(parts.imagine)(state, k_start, k_roll, hp)
    epochs = int(fit_metrics["model_epochs"])
    h_max, n_hold, steps_per_epoch = mdl.refit_sizes(cfg, real_capacity(cfg), int(state.real.size))
    n_updates = cfg.updates_per_step * cfg.chunk_steps

    def learn_chunk(s, k):          # the chunk's SAC updates, sampling and mixing included
        return jax.lax.scan(lambda s, k: parts.learn(s, k, hp), s, jax.random.split(k, cfg.chunk_steps))[0].agent

    batch = jax.tree_util.tree_map(lambda x: x[:cfg.batch_size], state.real.data)

    def learn_fixed(agent, k):      # the same number of updates on one fixed batch: the update's math alone
        one = lambda a, k: (learn(nets, a, batch, k, hp, target_fn=sac_target)[0], None)
        return jax.lax.scan(one, agent, jax.random.split(k, n_updates))[0]

    def collect_chunk(s, k):
        return jax.lax.scan(lambda s, k: (parts.collect(s, k, False)[0], None), s, jax.random.split(k, cfg.chunk_steps))[0].real

    E, b, width = cfg.ensemble_size, cfg.model_batch_size, cfg.model_hidden[0]
    x = jnp.zeros((E, b, ens.sizes[0]))
    y = jnp.zeros((E, b, ens.out_size))
    per_update = flops(lambda s, k: parts.learn(s, k, hp), state, k_learn)   # its scan over updates: counted once
    model_step = flops(lambda p, o: mdl.model_update(p, o, x, y, jnp.ones((E, b)), ens.weight_decay, hp.model_lr,
                                                         ens.matmul_dtype),
                       state.model.params, state.model.opt)
    rows = mdl.holdout_block_rows(h_max)                            # the holdout is scored in blocks of `rows`
    holdout = -(-n_hold // rows) * flops(lambda p: mdl._holdout_errors(
        p, jnp.zeros((rows, ens.sizes[0])), jnp.zeros((rows, ens.out_size)), ens.matmul_dtype), state.model.params)
    eval_ret, eval_len = jax.jit(parts.evaluate)(state, k_eval)
    eval_len = float(eval_len)

    share = -(-cfg.rollout_batch_size // cfg.num_elites)
    rates = {"sac": chain_rate(1, cfg.batch_size, cfg.critic_hidden[0], args.repeats),
             "ensemble fit": chain_rate(E, b, width, args.repeats),
             "imagination": chain_rate(cfg.num_elites, share, width, args.repeats, length=4)}
    part = {   # name: (function, args, FLOPs, matmul shape it is held to)
        f"learn: {n_updates} SAC updates (sampling, mixing)": (learn_chunk, (state, k_learn), per_update * n_updates, "sac"),
        f"learn on one fixed batch: {n_updates} updates": (learn_fixed, (state.agent, k_learn), per_update * n_updates, "sac"),
        f"fit_model: {epochs} epochs x {steps_per_epoch} steps": (
            lambda s, k: parts.fit_model(s, k, hp)[0].model, (state, k_fit),
            epochs * (steps_per_epoch * model_step + holdout), "ensemble fit"),
        f"imagine: {cfg.rollout_batch_size} x {cfg.max_rollout_length} steps": (
            lambda s, k: parts.imagine(s, k, k_roll, hp)[0].model_buf, (state, k_start),
            flops(lambda s, k: parts.imagine(s, k, k_roll, hp)[0].model_buf, state, k_start) * cfg.max_rollout_length,
            "imagination"),
        f"collect: {cfg.chunk_steps} env steps": (collect_chunk, (state, k_learn),
                                                  flops(collect_chunk, state, k_learn) * cfg.chunk_steps, "sac"),
        f"evaluate: {cfg.eval_episodes} episodes, {eval_len:.0f} steps": (
            lambda s, k: parts.evaluate(s, k), (state, k_eval),
            flops(lambda s, k: parts.evaluate(s, k), state, k_eval) * eval_len, "sac"),
    }
    result = {"settings": to_dict(cfg, hp), "overrides": parse_set(args.set), "warmup_steps": args.warmup,
              "provenance": provenance(command), "load_average_before": load_average(),
              "matmul_chain_gflops": {k: v / 1e9 for k, v in rates.items()},
              "model_epochs": epochs, "model_steps_per_epoch": steps_per_epoch, "parts": {}}
    print({k: f"{v / 1e9:.1f} GFLOP/s" for k, v in rates.items()}, flush=True)
    for name, (fn, fargs, fl, shape) in part.items():
        med, ts = timed(jax.jit(fn), *fargs, repeats=args.repeats)
        floor = fl / rates[shape]
        result["parts"][name] = {"seconds_median": med, "seconds": ts, "gflop": fl / 1e9, "held_to": shape,
                                 "floor_seconds": floor, "ratio_to_floor": med / floor}
        print(f"{name}: {med:.3f}s, {fl / 1e9:.2f} GFLOP, floor {floor:.3f}s, x{med / floor:.2f}", flush=True)
        save(result, command, args, complete=False)
    # the compiled loop itself over the same chunk + evaluation, from the same warmed-up state (so
    # its refit is a first refit too): what the parts do not account for
    adv = jax.jit(prog.advance)
    med, ts = timed(adv, start, hp, repeats=args.repeats)
    result["advance"] = {"seconds_median": med, "seconds": ts,
                         "model_epochs": int(adv(start, hp)[1]["model_epochs"][-1])}
    print(f"advance (one period, the compiled loop): {med:.3f}s", flush=True)
    result["load_average_after"] = load_average()
    save(result, command, args, complete=True)
    return 0


def save(result, command, args, complete: bool) -> None:
    """JSON + a Markdown table of what has been measured so far (atomic writes)."""
    result["complete"] = complete
    out = Path(args.out)
    write_json(out / f"{args.name}.json", result)
    p, s = result["provenance"], result["settings"]
    chunk = [v for k, v in result["parts"].items() if not k.startswith("learn on one fixed")]
    lines = md_header(f"One MBPO chunk against its FLOP floor ({s['env']})", command, p)
    lines[-1] += f"; load average {result['load_average_before']}"
    lines += ["",
             "Matmul-chain rates in this process (GFLOP/s): " + ", ".join(
                 f"{k} {v:.1f}" for k, v in result["matmul_chain_gflops"].items()) + "." + (
                 "" if complete else " **Incomplete: not every part was timed.**"), "",
             "| part | GFLOP | seconds (median) | held to | floor s | measured / floor |", "|---|---|---|---|---|---|"]
    for name, v in result["parts"].items():
        lines.append(f"| {name} | {v['gflop']:.2f} | {v['seconds_median']:.3f} | {v['held_to']} | "
                     f"{v['floor_seconds']:.3f} | {v['ratio_to_floor']:.2f} |")
    if chunk:
        t, f = sum(v["seconds_median"] for v in chunk), sum(v["floor_seconds"] for v in chunk)
        lines.append(f"| **chunk (parts above, fixed-batch row excluded)** | {sum(v['gflop'] for v in chunk):.2f} | "
                     f"{t:.3f} | | {f:.3f} | {t / f:.2f} |")
    if "advance" in result:
        a = result["advance"]["seconds_median"]
        lines += ["", f"The compiled loop (`advance`, one period: {s['eval_every']} steps, refit, imagination, "
                  f"updates, evaluation) from the same warmed-up state: {a:.3f} s, {a / t:.2f}x the parts' sum and "
                  f"{a / f:.2f}x their floor (its refit ran {result['advance']['model_epochs']} epochs with its own "
                  "keys, and its evaluation runs the policy as updated by the chunk, so the two can differ a little)."]
    write_text(out / f"{args.name}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
