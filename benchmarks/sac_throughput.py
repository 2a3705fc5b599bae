"""SAC throughput on the current device: jaxdyna (1, 2, 4, 8 vmapped seeds) vs Brax's own SAC.

  PYTHONPATH=. python benchmarks/sac_throughput.py [--quick] [--out results/sac_throughput] [--name cpu]

For each env (inverted_pendulum, hopper; Brax `generalized` backend for both implementations) it
measures, in one process:

* jaxdyna SAC, `jax.jit(jax.vmap(prog.advance))` for N seeds: the compile time
  (`lower(...).compile()`, which includes the evaluation inside `advance`), then `--repeats`
  timed calls of one evaluation period (`--steps` env steps per seed, one collect step + one
  gradient update each, then one deterministic evaluation episode of `episode_length` steps).
  The evaluation is also compiled and timed on its own (same N, on the final states) and subtracted, so the
  "train" throughput excludes evaluation, like Brax's `training/sps`. The raw per-call time
  including evaluation is kept too. Warm-up collection (`prog.init`) is timed separately.
* Brax 0.14.2 `brax.training.agents.sac.train.train` at matched settings (same env and backend,
  num_envs 1, batch 256, 1 gradient update per env step, (256, 256) relu MLPs for actor and twin
  critics, lr 3e-4, gamma 0.99, tau 0.005, 1000 random-prefill steps, replay 100k, episode
  length 1000, one deterministic eval episode). It runs `--repeats + 1` training epochs of
  `--steps` env steps; the first includes compiling Brax's `training_epoch`, the rest give the
  steady-state rate from Brax's own `training/sps` (timed without evaluation). Brax's compile
  time is estimated as (first epoch time - median steady epoch time). Brax trains one seed
  per call. It needs the `jax.device_put_replicated` shim in `benchmarks/_brax_compat.py`.

One seed is also timed as the program `jaxdyna run --seeds 1` executes on this backend (the
default batching: `map` on CPU, i.e. the unbatched program, because a vmap even of one seed
batches every matmul and costs more on XLA CPU; `vmap` on accelerators). Side by side: that
program is also timed once right after each of Brax's training epochs
(from Brax's progress callback), so the two alternate block by block under the same machine
load; the ratio of those medians is the headline comparison.

Gradient updates per second = env steps per second x updates per step (1 here) for both.
Per-seed throughput of N vmapped seeds is total / N. Also timed once per env, at one seed, are
the pieces of our loop: env stepping alone and the SAC update alone on a fixed batch.

Writes `<out>/<name>.json` (settings, every raw timing, medians, load averages, provenance)
and `<out>/README.md` (table and provenance).
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _brax_compat  # noqa: E402
from _timing import load_average, median, timed_call  # noqa: E402

from jaxdyna.config import resolve, stack_hparams  # noqa: E402
from jaxdyna.envs import Transition, env_reset, env_step, evaluate, make_env  # noqa: E402
from jaxdyna.io import describe_versions, provenance, write_json, write_text  # noqa: E402
from jaxdyna.networks import deterministic_action  # noqa: E402
from jaxdyna.sac import agent_init, learn, make_nets  # noqa: E402
from jaxdyna.sweep import batched, resolve_batching, run_keys  # noqa: E402
from jaxdyna.train import make_train  # noqa: E402

BACKEND = "generalized"
WARMUP = 1000
BUFFER = 100_000
BATCH = 256
HIDDEN = (256, 256)
EPISODE_LENGTH = 1000
UPDATES_PER_STEP = 1
LR, GAMMA, TAU = 3e-4, 0.99, 0.005


def our_config(env: str, steps: int):
    return resolve({"algo": "sac", "env": env, "backend": BACKEND, "total_steps": WARMUP + steps,
                    "warmup_steps": WARMUP, "eval_every": steps, "eval_episodes": 1, "buffer_size": BUFFER,
                    "batch_size": BATCH, "updates_per_step": UPDATES_PER_STEP, "actor_hidden": list(HIDDEN),
                    "critic_hidden": list(HIDDEN), "num_envs": 1, "episode_length": EPISODE_LENGTH,
                    "actor_lr": LR, "critic_lr": LR, "alpha_lr": LR, "gamma": GAMMA, "tau": TAU})


# ------------------------------------------------------------------------------------------
# jaxdyna
# ------------------------------------------------------------------------------------------
def bench_ours(env_name: str, seeds_list: list[int], steps: int, repeats: int) -> dict:
    cfg, hp = our_config(env_name, steps)
    prog = make_train(cfg, num_evals=1)
    env = make_env(env_name, BACKEND)
    nets = make_nets(cfg, env.action_size)

    # Warm-up collection: one unvmapped program, run once per seed; a seed's state does not
    # depend on the batch it is in, so stacking these equals the vmapped init.
    t = time.perf_counter()
    init = jax.jit(prog.init).lower(jax.random.PRNGKey(0), hp).compile()
    init_compile = time.perf_counter() - t
    max_n = max(seeds_list)
    keys = run_keys(np.arange(max_n))
    singles, init_runs = [], []
    for i in range(max_n):
        s, dt = timed_call(init, keys[i], hp)
        singles.append(s)
        init_runs.append(dt)
    out = {"init_compile_s": init_compile, "init_run_s": init_runs, "runs": []}

    def eval_fn(agent, key):
        policy = lambda obs, _k: deterministic_action(nets.actor, agent.actor, obs)
        return evaluate(env, policy, key, cfg.eval_episodes, cfg.episode_length)

    for n in seeds_list:
        states = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *singles[:n])
        hps = stack_hparams([hp] * n)
        load0 = load_average()
        t = time.perf_counter()
        advance = jax.jit(jax.vmap(prog.advance)).lower(states, hps).compile()
        compile_s = time.perf_counter() - t
        call_s = []
        for _ in range(repeats):
            (states, metrics), dt = timed_call(advance, states, hps)
            call_s.append(dt)
        t = time.perf_counter()
        ev = jax.jit(jax.vmap(eval_fn)).lower(states.agent, states.key).compile()
        eval_compile_s = time.perf_counter() - t
        eval_s = [timed_call(ev, states.agent, states.key)[1] for _ in range(repeats)]
        call_med, eval_med = median(call_s), median(eval_s)
        train_s = max(call_med - eval_med, 1e-9)
        total_sps = n * steps / train_s
        run = {
            "seeds": n, "compile_s": compile_s, "call_s": call_s, "eval_compile_s": eval_compile_s,
            "eval_s": eval_s, "call_median_s": call_med, "eval_median_s": eval_med, "train_s": train_s,
            "env_steps_per_s_total": total_sps, "env_steps_per_s_per_seed": total_sps / n,
            "grad_updates_per_s_total": total_sps * UPDATES_PER_STEP,
            "env_steps_per_s_total_incl_eval": n * steps / call_med,
            "ms_per_update_per_seed": 1e3 * train_s / (n * steps * UPDATES_PER_STEP),
            "load_avg_1min": [load0, load_average()],
            "final_env_steps": np.asarray(metrics["env_steps"]).ravel().tolist(),
        }
        out["runs"].append(run)
        print(f"  ours  {env_name:18s} seeds={n}: compile {compile_s:6.1f}s  "
              f"{total_sps:7.1f} env steps/s total, {total_sps / n:7.1f} per seed "
              f"(eval {eval_med:.2f}s of {call_med:.2f}s/call; load {run['load_avg_1min']})", flush=True)
    # One seed as `jaxdyna run --seeds 1` runs it on this backend: `batched(advance, "auto")` over
    # a run axis of one (CPU: `lax.map`, i.e. the unbatched program, since a vmap of size 1 batches
    # every matmul and is slower on XLA CPU; accelerators: `vmap`). Timed once here, and once after
    # each Brax epoch for the side-by-side comparison (`one_call`).
    batching = resolve_batching("auto")
    hp1 = stack_hparams([hp])
    first = jax.tree_util.tree_map(lambda x: x[None], singles[0])
    t = time.perf_counter()
    plain = jax.jit(batched(prog.advance, batching)).lower(first, hp1).compile()
    plain_compile = time.perf_counter() - t
    ev1 = jax.jit(eval_fn).lower(singles[0].agent, singles[0].key).compile()
    holder = {"state": first}
    eval1 = median([timed_call(ev1, singles[0].agent, singles[0].key)[1] for _ in range(repeats)])

    def one_call():
        (holder["state"], _), dt = timed_call(plain, holder["state"], hp1)
        # evaluation ends when every episode has ended, so its cost changes as the agent learns:
        # subtract the evaluation of the agent this call produced, timed right after it
        s = jax.tree_util.tree_map(lambda x: x[0], holder["state"])
        ev_dt = timed_call(ev1, s.agent, s.key)[1]
        return 1e3 * max(dt - ev_dt, 1e-9) / (steps * UPDATES_PER_STEP)

    alone = [one_call() for _ in range(repeats)]
    out["as_run_1_seed"] = {"batching": batching, "compile_s": plain_compile, "eval_median_s": eval1,
                            "ms_per_update": alone, "ms_per_update_median": median(alone)}
    out["one_call"] = one_call
    print(f"  ours  {env_name:18s} 1 seed as `jaxdyna run` ({batching}): {median(alone):.2f} ms/update", flush=True)
    out["pieces_1_seed"] = bench_pieces(cfg, hp, env, nets, steps, repeats)
    return out


def bench_pieces(cfg, hp, env, nets, steps: int, repeats: int) -> dict:
    """ms per env step (our auto-resetting `env_step`, and Brax's bare `env.step`) and per SAC
    update on a fixed batch, each as a jitted scan of `steps` iterations, one seed."""
    obs_size, act_size = env.observation_size, env.action_size

    def env_loop(es):
        def body(es, k):
            a = jax.random.uniform(k, (1, act_size), minval=-1.0, maxval=1.0)
            es, tr, _ = env_step(env, es, a, cfg.episode_length)
            return es, tr.reward
        return jax.lax.scan(body, es, jax.random.split(jax.random.PRNGKey(1), steps))

    def bare_env_loop(s):
        def body(s, k):
            s = env.step(s, jax.random.uniform(k, (act_size,), minval=-1.0, maxval=1.0))
            return s, s.reward
        return jax.lax.scan(body, s, jax.random.split(jax.random.PRNGKey(1), steps))

    agent = agent_init(nets, jax.random.PRNGKey(0), obs_size, hp)
    b = cfg.batch_size
    batch = Transition(obs=jnp.ones((b, obs_size)) * 0.1, action=jnp.zeros((b, act_size)),
                       reward=jnp.ones(b), next_obs=jnp.ones((b, obs_size)) * 0.1, terminal=jnp.zeros(b))

    def learn_loop(agent):
        def body(agent, k):
            agent, m = learn(nets, agent, batch, k, hp)
            return agent, m["critic_loss"]
        return jax.lax.scan(body, agent, jax.random.split(jax.random.PRNGKey(1), steps))

    out = {}
    start = jax.jit(env_reset, static_argnums=(0, 2))(env, jax.random.PRNGKey(0), 1)   # compiled: eagerly a
    bare_start = jax.jit(env.reset)(jax.random.PRNGKey(0))                            # reset is thousands of ops
    for name, fn, arg in (("env_step_ms", env_loop, start),
                          ("bare_brax_env_step_ms", bare_env_loop, bare_start),
                          ("sac_update_fixed_batch_ms", learn_loop, agent)):
        c = jax.jit(fn).lower(arg).compile()
        ts = [timed_call(c, arg)[1] for _ in range(repeats)]
        out[name] = 1e3 * median(ts) / steps
        out[name + "_raw_s"] = ts
    print(f"  ours  pieces (1 seed, ms/step): {', '.join(f'{k} {v:.3f}' for k, v in out.items() if k.endswith('_ms'))}",
          flush=True)
    return out


# ------------------------------------------------------------------------------------------
# Brax
# ------------------------------------------------------------------------------------------
def run_brax_sac(env_name: str, num_timesteps: int, num_evals: int, num_eval_envs: int, seed: int, progress_fn):
    """Brax's own `sac.train` at the matched settings above (the one call both benchmarks make)."""
    from brax import envs
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as brax_sac

    return brax_sac.train(
        environment=envs.get_environment(env_name, backend=BACKEND),
        num_timesteps=num_timesteps, episode_length=EPISODE_LENGTH, num_envs=1, num_eval_envs=num_eval_envs,
        learning_rate=LR, discounting=GAMMA, tau=TAU, batch_size=BATCH, grad_updates_per_step=UPDATES_PER_STEP,
        min_replay_size=WARMUP, max_replay_size=BUFFER, num_evals=num_evals, deterministic_eval=True,
        normalize_observations=False, reward_scaling=1.0, seed=seed,
        network_factory=functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=HIDDEN),
        progress_fn=progress_fn)


def bench_brax(env_name: str, steps: int, repeats: int, seed: int = 0, between=None) -> dict:
    epochs = repeats + 1
    records = []
    t0 = time.perf_counter()

    interleaved = []

    def progress(step, metrics):
        rec = {"t": time.perf_counter() - t0, "env_steps": int(step), "load_avg_1min": load_average()}
        for k in ("training/sps", "training/walltime", "eval/epoch_eval_time", "eval/episode_reward"):
            if k in metrics:
                rec[k] = float(metrics[k])
        records.append(rec)
        if between is not None and "training/sps" in metrics:
            interleaved.append(between())     # one timed block of ours right after each Brax epoch

    run_brax_sac(env_name, WARMUP + steps * epochs, num_evals=epochs + 1, num_eval_envs=1, seed=seed,
                 progress_fn=progress)
    total = time.perf_counter() - t0

    train_recs = [r for r in records if "training/sps" in r]
    if len(train_recs) != epochs or any(r["env_steps"] != WARMUP + steps * (i + 1) for i, r in enumerate(train_recs)):
        raise RuntimeError(f"unexpected Brax epochs: {train_recs}")
    epoch_s = [steps / r["training/sps"] for r in train_recs]
    steady = epoch_s[1:]
    steady_med = median(steady)
    sps = steps / steady_med
    eval_s = [r["eval/epoch_eval_time"] for r in records]
    out = {
        "seeds": 1, "epochs": epochs, "steps_per_epoch": steps,
        "epoch_s": epoch_s, "steady_epoch_s": steady, "steady_epoch_median_s": steady_med,
        "compile_s": epoch_s[0] - steady_med,
        "prefill_compile_and_run_s": train_recs[0]["training/walltime"] - epoch_s[0],
        "eval_s": eval_s, "total_wall_s": total,
        "env_steps_per_s_total": sps, "env_steps_per_s_per_seed": sps,
        "grad_updates_per_s_total": sps * UPDATES_PER_STEP,
        "ms_per_update_per_seed": 1e3 * steady_med / (steps * UPDATES_PER_STEP),
        "final_eval_return": records[-1].get("eval/episode_reward"),
        "progress": records,
    }
    if between is not None:
        # side by side: epoch i of Brax, then one block of ours (1 seed), alternating; the first
        # Brax epoch includes its compile, so pairs start at the second
        brax_ms = [1e3 * e / (steps * UPDATES_PER_STEP) for e in epoch_s[1:]]
        ours_ms = interleaved[1:]
        out["interleaved"] = {"brax_ms_per_update": brax_ms, "ours_ms_per_update": ours_ms,
                              "brax_median_ms": median(brax_ms), "ours_median_ms": median(ours_ms),
                              "ratio_ours_over_brax": median(ours_ms) / median(brax_ms)}
        out["interleaved"]["median_pair_ratio"] = pair_ratio(out["interleaved"])
    print(f"  brax  {env_name:18s} seeds=1: compile~{out['compile_s']:6.1f}s  {sps:7.1f} env steps/s "
          f"(steady epochs {[round(x, 2) for x in steady]}s; evals {[round(x, 2) for x in eval_s]}s)", flush=True)
    return out


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------
def table(results: dict) -> str:
    head = ("| env | impl | seeds | compile s | env steps/s total | env steps/s per seed | grad updates/s "
            "| ms / update / seed | per-seed slowdown vs 1 seed |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for env_name, r in results.items():
        base = r["ours"]["runs"][0]["ms_per_update_per_seed"]
        for run in r["ours"]["runs"]:
            slow = run["ms_per_update_per_seed"] / base
            lines.append(f"| {env_name} | jaxdyna | {run['seeds']} | {run['compile_s']:.1f} | "
                         f"{run['env_steps_per_s_total']:.1f} | {run['env_steps_per_s_per_seed']:.1f} | "
                         f"{run['grad_updates_per_s_total']:.1f} | {run['ms_per_update_per_seed']:.2f} | {slow:.2f}x |")
        ub, label = one_seed_run(r["ours"])
        if ub:
            ms = ub["ms_per_update_median"]
            lines.append(f"| {env_name} | jaxdyna, {label} | 1 | {ub['compile_s']:.1f} | "
                         f"{1e3 / ms:.1f} | {1e3 / ms:.1f} | {1e3 / ms:.1f} | {ms:.2f} | - |")
        b = r["brax"]
        lines.append(f"| {env_name} | brax | 1 | ~{b['compile_s']:.1f} | {b['env_steps_per_s_total']:.1f} | "
                     f"{b['env_steps_per_s_per_seed']:.1f} | {b['grad_updates_per_s_total']:.1f} | "
                     f"{b['ms_per_update_per_seed']:.2f} | - |")
    return "\n".join(lines)


def pieces_table(results: dict) -> str:
    lines = ["| env | our env_step ms | bare brax env.step ms | SAC update (fixed batch) ms | "
             "our full loop ms / step, 1 seed | Brax full loop ms / step |", "|---|---|---|---|---|---|"]
    for env_name, r in results.items():
        p = r["ours"]["pieces_1_seed"]
        lines.append(f"| {env_name} | {p['env_step_ms']:.3f} | {p['bare_brax_env_step_ms']:.3f} | "
                     f"{p['sac_update_fixed_batch_ms']:.2f} | {r['ours']['runs'][0]['ms_per_update_per_seed']:.2f} | "
                     f"{r['brax']['ms_per_update_per_seed']:.2f} |")
    return "\n".join(lines)


def pair_ratio(it: dict) -> float:
    """Median over pairs of (our block / the Brax epoch just before it): robust to slow drifts in load."""
    return median([o / b for o, b in zip(it["ours_ms_per_update"], it["brax_ms_per_update"])])


def side_by_side_table(results: dict) -> str:
    lines = ["| env | ours ms / update (1 seed) | Brax ms / update | ours / Brax | median of pair ratios | pairs |",
             "|---|---|---|---|---|---|"]
    for env_name, r in results.items():
        it = r["brax"].get("interleaved")
        if it:
            lines.append(f"| {env_name} | {it['ours_median_ms']:.2f} | {it['brax_median_ms']:.2f} | "
                         f"{it['ratio_ours_over_brax']:.2f} | {pair_ratio(it):.2f} | {len(it['ours_ms_per_update'])} |")
    return "\n".join(lines)


def one_seed_run(ours: dict) -> tuple[dict | None, str | None]:
    """The one-seed timing that the side-by-side alternates with Brax, and what program it ran.

    Files written before `as_run_1_seed` hold `unbatched_1_seed` (the CPU program) instead.
    """
    if "as_run_1_seed" in ours:
        run = ours["as_run_1_seed"]
        return run, f"as `jaxdyna run --seeds 1` runs it here: {run['batching']} over one seed"
    if "unbatched_1_seed" in ours:
        return ours["unbatched_1_seed"], "unbatched, as `jaxdyna run --seeds 1` runs it on CPU"
    return None, None


def section(doc: dict) -> str:
    """The README section of one results JSON (one device)."""
    prov, s = doc["provenance"], doc["settings"]
    versions = describe_versions(prov)
    return f"""## {prov['device']}

Command: `{prov['command']}`
Git revision: `{prov['git_revision']}`. Versions: {versions}.
Brax ran with the shims {s['brax_shims']} (`benchmarks/_brax_compat.py`). Benchmark wall time
{doc['benchmark_wall_s'] / 60:.1f} min. Raw timings: [`{doc['json_name']}`]({doc['json_name']}).{'' if doc.get('complete', True) else
' **Incomplete: the run stopped before every env it was asked for ran.**'}

{table(doc['results'])}

Side by side in time (the target's measure): one block of Brax training, then one block of ours
(1 seed, {one_seed_run(next(iter(doc['results'].values()))['ours'])[1]}), alternating, so both see the same machine load; medians over the pairs:

{side_by_side_table(doc['results'])}

Where one step of our loop goes (1 seed, ms; each piece timed alone as a jitted scan):

{pieces_table(doc['results'])}

{doc.get('reading', '')}
"""


def readme(docs: list[dict]) -> str:
    s = docs[0]["settings"]
    return f"""# SAC throughput: jaxdyna vs Brax's own SAC

Made by `benchmarks/sac_throughput.py`. Backend `{s['backend']}` for both implementations. Settings:
one env per seed, batch {s['batch_size']}, {s['updates_per_step']} gradient update per env step, actor and
twin critics {s['hidden']} relu, lr {s['lr']}, gamma {s['gamma']}, tau {s['tau']}, {s['warmup_steps']} random
warm-up steps (not timed), replay capacity {s['buffer_size']}, episode length {s['episode_length']}, one
deterministic evaluation episode. Throughput is the median over `--repeats` timed blocks (the
count is in each section's command; default 3) of {s['steps']} env steps per seed, evaluation excluded (ours: the evaluation is timed on its own and subtracted;
Brax: its `training/sps`, which excludes it). "compile s" is `lower().compile()` of the vmapped
`advance` for ours (that program includes the evaluation) and first-epoch time minus the steady
epoch time for Brax (its training epoch only). Brax trains one seed per call. "per-seed slowdown"
= ms per update per seed at N seeds / the same at 1 seed (1.00x: N seeds cost N times one seed).
The machine may be shared: the 1-minute load averages during each measurement are in the JSON.

""" + "\n".join(section(d) for d in docs)


def write_readme(out_dir: Path) -> None:
    import json

    docs = [json.loads(f.read_text()) for f in sorted(out_dir.glob("*.json"))]
    write_text(out_dir / "README.md", readme(docs))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", nargs="+", default=["inverted_pendulum", "hopper"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 4, 8])
    p.add_argument("--steps", type=int, default=250, help="env steps per seed in one timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per measurement (median)")
    p.add_argument("--pairs", type=int, default=None,
                   help="Brax epochs after the first = side-by-side pairs (default: --repeats)")
    p.add_argument("--out", default="results/sac_throughput", help="results directory")
    p.add_argument("--name", default=None, help="JSON file stem (default: cpu or gpu from the device)")
    p.add_argument("--reading", default=None,
                   help="with --readme-only: file whose text becomes the reading paragraph of <name>.json")
    p.add_argument("--readme-only", action="store_true",
                   help="do not measure; rebuild <out>/README.md from the JSON files in <out>")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run (inverted_pendulum, 1 and 2 seeds; default --out /tmp/sac_throughput_quick)")
    args = p.parse_args(argv)
    name = args.name or ("cpu" if jax.default_backend() == "cpu" else jax.default_backend())
    if args.readme_only:
        out_dir = Path(args.out)
        if args.reading:
            import json

            path = out_dir / f"{name}.json"
            doc = json.loads(path.read_text())
            doc["reading"] = Path(args.reading).read_text().strip()
            write_json(path, doc)
        write_readme(out_dir)
        print(f"wrote {out_dir / 'README.md'}")
        return
    if args.quick:
        args.envs, args.seeds, args.steps, args.repeats = ["inverted_pendulum"], [1, 2], 20, 2
        if args.out == p.get_default("out"):
            args.out = "/tmp/sac_throughput_quick"
    if args.pairs is None:
        args.pairs = args.repeats
    if sorted(args.seeds)[0] != 1:
        args.seeds = [1] + args.seeds
    args.seeds = sorted(set(args.seeds))

    command = "PYTHONPATH=. python " + " ".join(shlex.quote(a) for a in
                                                ["benchmarks/sac_throughput.py"] + (sys.argv[1:] if argv is None else argv))
    shims = _brax_compat.install()
    prov = provenance(command)
    print(f"device: {prov['device']}; shims: {shims}", flush=True)
    settings = {"backend": BACKEND, "batch_size": BATCH, "updates_per_step": UPDATES_PER_STEP,
                "hidden": list(HIDDEN), "lr": LR, "gamma": GAMMA, "tau": TAU, "warmup_steps": WARMUP,
                "buffer_size": BUFFER, "episode_length": EPISODE_LENGTH, "eval_episodes": 1,
                "steps": args.steps, "repeats": args.repeats, "pairs": args.pairs, "seeds": args.seeds, "envs": args.envs,
                "brax_shims": shims, "quick": args.quick}
    out_dir = Path(args.out)
    t_start = time.perf_counter()
    results = {}
    for env_name in args.envs:
        print(f"{env_name}:", flush=True)
        ours = bench_ours(env_name, args.seeds, args.steps, args.repeats)
        brax = bench_brax(env_name, args.steps, args.pairs, between=ours.pop("one_call"))
        it = brax["interleaved"]
        print(f"  side by side (1 seed, alternating blocks): ours {it['ours_median_ms']:.2f} ms/update, "
              f"Brax {it['brax_median_ms']:.2f} ms/update, ratio {it['ratio_ours_over_brax']:.2f}", flush=True)
        results[env_name] = {"ours": ours, "brax": brax}
        # written after every env, so a run stopped part-way keeps what it measured
        wall = time.perf_counter() - t_start
        doc = {"provenance": prov, "settings": settings, "benchmark_wall_s": wall, "json_name": f"{name}.json",
               "complete": env_name == args.envs[-1], "results": results}
        write_json(out_dir / f"{name}.json", doc)
        write_readme(out_dir)
    print(table(results))
    print(pieces_table(results))
    print(f"wrote {out_dir / (name + '.json')} and README.md ({wall:.0f}s)")


if __name__ == "__main__":
    main()
