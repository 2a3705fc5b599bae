"""jaxdyna vs mbrl-lib's MBPO, side by side: wall-clock seconds at mbrl-lib's inverted-pendulum config.

mbrl-lib (PyPI `mbrl==0.2.0`, CPU torch) runs in its own virtual environment, which this script
creates on first use (`--venv`, outside the repository). mbrl 0.2.0 pins hydra-core 1.0.3, which
fails on Python 3.11, so it is installed with --no-deps beside hydra-core 1.3.2, omegaconf 2.3.0,
gymnasium 0.26.3, numpy<1.25 and mujoco<3.3, and its example configs are copied and patched for
hydra 1.3 (`_self_` first in `defaults`, no `# @package _group_`, no `action_optimizer` default, which
the wheel does not ship; `_recursive_: false` on the SAC agent and the model, hydra 1.0's behaviour, so
the agent gets its action space as the config node {low, high, shape} it reads, as under hydra 1.0.3).

mbrl-lib side: main.yaml + algorithm=mbpo + overrides=mbpo_inv_pendulum + dynamics_model
gaussian_mlp_ensemble, on the CPU, run as mbrl-lib's examples/main.py does (two envs, seeds,
`mbrl.algorithms.mbpo.train`). mbrl-lib counts `num_steps` after its initial exploration, so
num_steps=2000 is 5,000 exploration + 2,000 learning steps; its real buffer is kept at the size the
full 20k-step config gives it (dataset_size=20000), so the run is the start of its own full run.
jaxdyna side: configs/mbpo/inverted_pendulum.yaml with JAX_OVERRIDES, built with the Python API so
compile and run are timed apart. Blocks alternate (jaxdyna, mbrl-lib, jaxdyna, ...), each a fresh
process pinned to `--cores` with as many threads. Writes OUT/NAME.json and OUT/NAME.md (medians).

    taskset -c 0 python benchmarks/mbrl_lib_peer.py --smoke        # plumbing check, ~2 min
    taskset -c 0 python benchmarks/mbrl_lib_peer.py --repeats 2    # the measurement
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
MBRL_PINS = ["hydra-core==1.3.2", "omegaconf==2.3.0", "gymnasium==0.26.3", "numpy<1.25", "mujoco<3.3",
             "termcolor", "tqdm", "imageio"]
MBRL_OVERRIDES = {"algorithm": "mbpo", "overrides": "mbpo_inv_pendulum", "dynamics_model": "gaussian_mlp_ensemble",
                  "device": "cpu", "algorithm.initial_exploration_steps": 5000, "overrides.num_steps": 2000,
                  "+algorithm.dataset_size": 20000}
JAX_OVERRIDES = {"warmup_steps": 5000, "total_steps": 7000, "eval_every": 250, "eval_episodes": 1,
                 "real_ratio": 0.0, "target_entropy": -1.0, "model_weight_decay": 1.0e-5,
                 "model_patience": 4, "model_max_epochs": 1000}
SMOKE_MBRL = {"algorithm.initial_exploration_steps": 300, "overrides.num_steps": 250,
              "overrides.effective_model_rollouts_per_step": 40}
SMOKE_JAX = {"warmup_steps": 300, "total_steps": 550, "rollout_batch_size": 10000}
DIFFERENCES = [
    "Environment: mbrl-lib steps gymnasium 0.26.3 MuJoCo InvertedPendulum-v4 (MuJoCo C engine, one "
    "Python call per step); jaxdyna steps Brax inverted_pendulum (generalized backend) inside its "
    "compiled loop. Same 4-d observation, 1-d action, 1000-step limit, known termination function.",
    "Initial exploration: mbrl-lib's 5,000 steps act with the untrained SAC policy (sampled actions, "
    "random_initial_explore: false); jaxdyna's 5,000 warm-up steps take uniform random actions.",
    "First SAC updates: mbrl-lib refits the model only at learning step 250 and skips SAC updates "
    "while its model buffer holds fewer than a batch, so it makes 10 x 1,751 = 17,510 SAC updates; "
    "jaxdyna refits before each 250-step chunk and makes 10 x 2,000 = 20,000. Both refit and roll "
    "out 100k one-step branches 8 times (mbrl-lib's 8th refit is at the last step).",
    "Model training: both stop after 5 epochs without a >1% holdout gain on any member and have no "
    "epoch cap (jaxdyna model_patience=4 with its `more than` rule, model_max_epochs=1000 as a "
    "bound that is not reached); mbrl-lib scores the untrained model first and keeps the whole "
    "ensemble's weights at the last improving epoch, jaxdyna starts each member's best at 1e10 and "
    "keeps each member's own best. Epochs per refit are recorded for both.",
    "Model details: weight decay 1e-5 is Adam's coupled L2 on every parameter in mbrl-lib, a 0.5 * c "
    "* ||W||^2 loss on the weights in jaxdyna; mbrl-lib's log-variance bounds are fixed "
    "(learn_logvar_bounds: false), jaxdyna learns them (MBPO); mbrl-lib normalises inputs over the "
    "whole real buffer in float64, jaxdyna over the training rows.",
    "Budget: mbrl-lib's config has num_steps=20,000; both run its first 2,000 learning steps. Its real "
    "buffer keeps the full config's capacity (dataset_size=20000, else it would be num_steps=2000 rows), "
    "jaxdyna's holds all 7,000 rows, so both fit the model on all real data (20% holdout).",
    "Bookkeeping in mbrl-lib's own loop is kept: it saves the model and the real buffer to its work "
    "directory at every refit, a SAC checkpoint at every new best evaluation, and CSV logs.",
    "The same on both: rollout length 1 (schedule [1, 15, 1, 1]); model buffer 100k rows, replaced each "
    "refit; 7 x 4x200 SiLU ensemble, 5 elites, Adam 1e-3, batch 256; SAC 256x256, lr 3e-4, batch 256, "
    "tau 5e-3, gamma 0.99, target entropy -1, real-data ratio 0; 1 deterministic evaluation episode "
    "every 250 learning steps, ended at termination or 1000 steps.",
]


# --- the mbrl-lib side (runs with the venv's python) ---------------------------------------
def patched_conf(dst: Path) -> Path:
    """Copy mbrl-lib's example configs to dst with the patches hydra 1.3 needs."""
    import mbrl
    src = Path(mbrl.__file__).parent / "examples" / "conf"
    edits = {"main.yaml": [("defaults:\n", "defaults:\n  - _self_\n"), ("  - action_optimizer: cem\n", "")],
             "algorithm/mbpo.yaml": [("  _target_: mbrl.third_party", "  _recursive_: false\n  _target_: mbrl.third_party")],
             "dynamics_model/gaussian_mlp_ensemble.yaml": [("_target_: mbrl.models.GaussianMLP\n",
                                                            "_target_: mbrl.models.GaussianMLP\n_recursive_: false\n")]}
    for f in src.rglob("*.yaml"):
        rel = f.relative_to(src).as_posix()
        text = f.read_text().replace("# @package _group_\n", "")
        for old, new in edits.get(rel, []):
            assert old in text, f"{rel}: expected {old!r}"
            text = text.replace(old, new)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_text(text)
    return dst


def mbrl_child(a) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    import gymnasium, hydra, mbrl, mujoco
    import mbrl.algorithms.mbpo as mbpo
    import mbrl.util.common
    import mbrl.util.env
    from mbrl.models import ModelTrainer
    from mbrl.third_party.pytorch_sac_pranz24.sac import SAC

    work = Path(a.work)
    with hydra.initialize_config_dir(config_dir=str(patched_conf(work / "conf")), version_base=None):
        cfg = hydra.compose("main", overrides=[*a.overrides, f"seed={a.seed}", f"root_dir={work}"])
    env, term_fn, _ = mbrl.util.env.EnvHandler.make_env(cfg)          # as mbrl-lib's examples/main.py
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    test_env, *_ = mbrl.util.env.EnvHandler.make_env(cfg)

    rec = {"sac_updates": 0, "model_epochs": [], "eval_returns": []}   # counters around mbrl-lib's calls
    explore, fit, update, evaluate = (mbrl.util.common.rollout_agent_trajectories, ModelTrainer.train,
                                      SAC.update_parameters, mbpo.evaluate)

    def timed_explore(*args, **kw):
        t = time.perf_counter()
        out = explore(*args, **kw)
        rec["explore_s"] = time.perf_counter() - t
        return out

    def counted_fit(self, *args, **kw):
        out = fit(self, *args, **kw)
        rec["model_epochs"].append(len(out[0]))
        return out

    def counted_update(self, *args, **kw):
        rec["sac_updates"] += 1
        return update(self, *args, **kw)

    def recorded_eval(*args, **kw):
        rec["eval_returns"].append(float(evaluate(*args, **kw)))
        return rec["eval_returns"][-1]

    mbrl.util.common.rollout_agent_trajectories, ModelTrainer.train = timed_explore, counted_fit
    SAC.update_parameters, mbpo.evaluate = counted_update, recorded_eval
    setup_s = time.perf_counter() - t0
    t, c = time.perf_counter(), time.process_time()
    mbpo.train(env, test_env, term_fn, cfg, work_dir=str(work))
    run_s, run_cpu_s = time.perf_counter() - t, time.process_time() - c
    return {**rec, "setup_s": setup_s, "run_s": run_s, "run_cpu_s": run_cpu_s, "with_compile_s": run_s, "compile_s": 0.0,
            "final_eval_return": rec["eval_returns"][-1] if rec["eval_returns"] else None,
            "torch_threads": torch.get_num_threads(),
            "versions": {"python": sys.version.split()[0], "mbrl": mbrl.__version__, "torch": torch.__version__,
                         "numpy": np.__version__, "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__,
                         "hydra-core": hydra.__version__}}


# --- the jaxdyna side (runs with this python) -----------------------------------------------
def jax_child(a) -> dict:
    t0 = time.perf_counter()
    import jax
    from jaxdyna.config import as_arrays, load_yaml, resolve
    from jaxdyna.train import make_train

    cfg, hp = resolve({**load_yaml(ROOT / a.config), **json.loads(a.overrides_json)})
    hpa, prog = as_arrays(hp), make_train(cfg)
    key = jax.random.PRNGKey(a.seed)
    setup_s = time.perf_counter() - t0

    t = time.perf_counter()
    init = jax.jit(prog.init).lower(key, hpa).compile()
    compile_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    state = jax.block_until_ready(init(key, hpa))
    run_s, run_cpu_s = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    advance = jax.jit(prog.advance).lower(state, hpa).compile()
    compile_s += time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    state, metrics = jax.block_until_ready(advance(state, hpa))
    run_s, run_cpu_s = run_s + time.perf_counter() - t, run_cpu_s + time.process_time() - c
    returns = [float(r) for r in metrics["eval_return"]]
    return {"setup_s": setup_s, "compile_s": compile_s, "run_s": run_s, "run_cpu_s": run_cpu_s,
            "with_compile_s": compile_s + run_s,
            "eval_returns": returns, "final_eval_return": returns[-1],
            "model_epochs": [int(e) for e in metrics["model_epochs"]],
            "sac_updates": cfg.updates_per_step * cfg.collect_steps}


# --- the parent: venv, alternating blocks, results -----------------------------------------
def pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-qq", *args], check=True)


def ensure_venv(venv: Path, torch_spec: str) -> None:
    """Create mbrl-lib's virtual environment once (a marker file records that it is complete)."""
    marker = venv / ".jaxdyna-mbrl-peer"
    wanted = json.dumps({"mbrl": "mbrl==0.2.0", "torch": torch_spec, "pins": MBRL_PINS})
    if marker.is_file() and marker.read_text() == wanted:
        return
    print(f"creating mbrl-lib's virtual environment in {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip(venv, "--no-deps", "mbrl==0.2.0")     # its pins (hydra-core 1.0.3, omegaconf 2.0) fail on 3.11
    try:
        pip(venv, torch_spec)
    except subprocess.CalledProcessError:
        print(f"{torch_spec!r} is not installable here; installing PyPI's default torch wheel instead", flush=True)
        pip(venv, "torch")
    pip(venv, *MBRL_PINS)
    marker.write_text(wanted)


def run_block(side: str, python: str, child_args: list[str], cores: list[int], log: Path) -> dict:
    """One side's run in a fresh process pinned to `cores`; its report plus the process's wall time.
    `side`: mbrl-lib, jaxdyna, or a jaxdyna variant ("jaxdyna model_matmul=bfloat16")."""
    n = str(len(cores))
    env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}
    if len(cores) == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                            " intra_op_parallelism_threads=1").strip()
    report = log.with_suffix(".json")
    load_before, cpu = round(os.getloadavg()[0], 2), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([python, str(HERE), side.split()[0], "--report", str(report), "--threads", n,
                               "--cores", ",".join(map(str, cores)), *child_args],
                              env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    wall, cpu_after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{side} failed (exit {proc.returncode}); its output is in {log}")
    cpu_s = cpu_after.ru_utime + cpu_after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {**json.loads(report.read_text()), "end_to_end_s": wall, "end_to_end_cpu_s": cpu_s, "load_before": load_before,
            "load_after": round(os.getloadavg()[0], 2)}


KEYS = ("run_s", "with_compile_s", "end_to_end_s", "run_cpu_s", "end_to_end_cpu_s", "compile_s", "setup_s")


def summarise(runs: list[dict]) -> tuple[dict, dict]:
    """Medians per side, and mbrl-lib's over each jaxdyna side's (keyed by the jaxdyna side)."""
    sides = list(dict.fromkeys(r["side"] for r in runs))
    med = {side: {k: statistics.median(r[k] for r in runs if r["side"] == side) for k in KEYS} for side in sides}
    ratio = {side: {k: med["mbrl-lib"][k] / med[side][k] for k in KEYS[:5]}
             for side in sides if side.startswith("jaxdyna") and "mbrl-lib" in med}
    return med, ratio


def save(out: Path, name: str, result: dict) -> None:
    from jaxdyna.io import describe_versions, write_json, write_text
    result["medians"], ratios = summarise(result["runs"])
    result["ratios_mbrl_over_jaxdyna"] = ratios.get("jaxdyna", {})
    result["ratios_mbrl_over"] = ratios
    write_json(out / f"{name}.json", result)
    p, med, ratios = result["provenance"], result["medians"], result["ratios_mbrl_over"]
    mv = next((r["versions"] for r in result["runs"] if r["side"] == "mbrl-lib"), {})
    lines = ["# jaxdyna vs mbrl-lib MBPO, inverted pendulum" + ("" if result["complete"] else " (INCOMPLETE)"), "",
             f"Command: `{result['command']}`  ", f"Git revision: `{p['git_revision']}`; device: {p['device']}  ",
             "jaxdyna side: " + describe_versions(p) + "  ",
             "mbrl-lib side: " + ", ".join(f"{k} {v}" for k, v in mv.items()), "",
             f"{result['settings']['budget']}. Median of {result['repeats']} alternating blocks per side, each a fresh "
             f"process pinned to core(s) {result['settings']['cores']} with {result['settings']['threads']} "
             "thread(s) (torch.set_num_threads; XLA single-threaded Eigen). Run only: mbrl-lib's "
             "`mbpo.train`, jaxdyna's compiled init + advance; with compile adds jaxdyna's XLA compile; "
             "end to end is the whole process (imports, setup, compile, run). CPU s = the process's CPU "
             "time over the same span: it hardly moves when something else shares the core, wall time does.",
             "", "| | run only s | with compile s | end to end s | run only CPU s | end to end CPU s | compile s |",
             "|---|---|---|---|---|---|---|"]
    cols = ("run_s", "with_compile_s", "end_to_end_s", "run_cpu_s", "end_to_end_cpu_s")
    for side, m in med.items():
        lines.append(f"| {side} | " + " | ".join(f"{m[k]:.1f}" for k in cols) + f" | {m['compile_s']:.1f} |")
    for side, ratio in ratios.items():
        lines.append(f"| **mbrl-lib / {side}** | " + " | ".join(f"**{ratio[k]:.2f}x**" for k in cols) + " | |")
    lines += ["", "Each block (final evaluation return is a sanity check that both learn; load = 1-min load average):",
              "", "| side | seed | run s | run CPU s | with compile s | SAC updates | model epochs per refit | "
              "eval returns | load |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['side']} | {r['seed']} | {r['run_s']:.1f} | {r['run_cpu_s']:.1f} | {r['with_compile_s']:.1f} | "
                     f"{r['sac_updates']} | {r['model_epochs']} | {[round(x) for x in r['eval_returns']]} | "
                     f"{r['load_before']}-{r['load_after']} |")
    loads = [x for r in result["runs"] for x in (r["load_before"], r["load_after"])]
    lines += ["", f"The 1-min load average ranged {min(loads)}-{max(loads)} during the blocks ({os.cpu_count()} "
              "cores in all; this run adds 1.0). Time lost to other processes on the same core shows as wall "
              "seconds above CPU seconds.", "", "Remaining differences:", ""] + [f"- {d}" for d in DIFFERENCES]
    write_text(out / f"{name}.md", "\n".join(lines) + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("mbrl-lib", "jaxdyna"):          # a child block
        ap = argparse.ArgumentParser()
        for flag in ("--report", "--work", "--config", "--overrides-json"):
            ap.add_argument(flag)
        ap.add_argument("--threads", type=int)
        ap.add_argument("--cores")
        ap.add_argument("--seed", type=int)
        ap.add_argument("--override", dest="overrides", action="append", default=[])
        a = ap.parse_args(argv[1:])
        os.sched_setaffinity(0, [int(c) for c in a.cores.split(",")])   # before any thread pool starts
        rep = (mbrl_child if argv[0] == "mbrl-lib" else jax_child)(a)
        Path(a.report).write_text(json.dumps(rep))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="alternating blocks per side (default 2)")
    ap.add_argument("--cores", default="0", help="CPU cores both sides are pinned to, e.g. 0 or 0,1 (default 0)")
    ap.add_argument("--seed0", type=int, default=0, help="block i uses seed seed0 + i on both sides")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets to check the plumbing")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="also run jaxdyna with this config value (repeatable; together one more side, "
                         "alternating with the others), e.g. model_matmul=bfloat16")
    ap.add_argument("--config", default="configs/mbpo/inverted_pendulum.yaml")
    ap.add_argument("--venv", default=str(Path.home() / ".cache/jaxdyna/mbrl-venv"))
    ap.add_argument("--torch-spec", default="torch==2.13.0+cpu",
                    help="pip requirement for torch in the venv (falls back to PyPI's default wheel)")
    ap.add_argument("--work", default=str(Path.home() / ".cache/jaxdyna/mbrl-peer-work"),
                    help="scratch folder: logs, mbrl-lib's run directories")
    ap.add_argument("--out", default="results/mbrl_lib_peer")
    ap.add_argument("--name", default=None, help="output file stem (default peer, or smoke with --smoke)")
    a = ap.parse_args(argv)
    command = "python benchmarks/mbrl_lib_peer.py " + " ".join(shlex.quote(x) for x in argv)
    from jaxdyna.io import provenance

    cores = [int(c) for c in a.cores.split(",")]
    variant = {}
    for item in a.variant:
        key, sep, value = item.partition("=")
        if not sep or not key:
            ap.error(f"--variant: expected KEY=VALUE, got {item!r}")
        variant[key] = yaml.safe_load(value)
    from jaxdyna.config import ConfigError, load_yaml, resolve
    try:                                      # refuse a bad value now, not after the first blocks
        resolve({**load_yaml(ROOT / a.config), **JAX_OVERRIDES, **variant})
    except ConfigError as e:
        ap.error(f"--variant: {e}")
    venv, work, out, name = Path(a.venv), Path(a.work), ROOT / a.out, a.name or ("smoke" if a.smoke else "peer")
    ensure_venv(venv, a.torch_spec)
    mbrl_over = [f"{k}={v}" for k, v in {**MBRL_OVERRIDES, **(SMOKE_MBRL if a.smoke else {})}.items()]
    jax_over = {**JAX_OVERRIDES, **(SMOKE_JAX if a.smoke else {})}
    budget = (f"{jax_over['warmup_steps']} exploration + {jax_over['total_steps'] - jax_over['warmup_steps']} "
              f"learning env steps" + (" (SMOKE budgets, not the measurement)" if a.smoke else ""))
    result = {"command": command, "provenance": provenance(command), "repeats": a.repeats, "complete": False,
              "settings": {"budget": budget, "cores": a.cores, "threads": len(cores), "smoke": a.smoke,
                           "jaxdyna_config": a.config, "jaxdyna_overrides": jax_over, "mbrl_overrides": mbrl_over,
                           "mbrl_pins": MBRL_PINS, "venv": str(venv), "variant": variant},
              "differences": DIFFERENCES, "runs": []}
    sides = {"jaxdyna": jax_over}
    if variant:
        sides["jaxdyna " + " ".join(f"{k}={v}" for k, v in variant.items())] = {**jax_over, **variant}
    for i in range(a.repeats):
        seed = a.seed0 + i
        for side in (*sides, "mbrl-lib"):
            wdir = work / f"{name}-{side.replace(' ', '-').replace('=', '-')}-{i}"
            wdir.mkdir(parents=True, exist_ok=True)
            if side in sides:
                args = [sys.executable, ["--config", a.config, "--overrides-json", json.dumps(sides[side])]]
            else:
                args = [str(venv / "bin" / "python"), ["--work", str(wdir)] + [f"--override={o}" for o in mbrl_over]]
            r = run_block(side, args[0], args[1] + ["--seed", str(seed)], cores, wdir / "log.txt")
            result["runs"].append({"side": side, "repeat": i, "seed": seed, **r})
            print(f"[{i}] {side}: run {r['run_s']:.1f}s, with compile {r['with_compile_s']:.1f}s, end to end "
                  f"{r['end_to_end_s']:.1f}s, final eval {r['final_eval_return']}", flush=True)
            save(out, name, result)
    result["complete"] = True
    save(out, name, result)
    print(json.dumps(result["ratios_mbrl_over"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
