"""`jaxdyna` command line: run a config over many seeds in one compiled program and write results."""

from __future__ import annotations

import argparse
import copy
import re
import shlex
import sys
import time
from pathlib import Path

from jaxdyna.config import ConfigError

DEFAULT_RUN = {"algo": "sac", "env": "inverted_pendulum", "total_steps": 10_000, "warmup_steps": 1_000,
               "eval_every": 1_000, "buffer_size": 100_000, "eval_episodes": 5}


# The main job (`jaxdyna compare` with no configs): MBPO vs classic Dyna vs SAC on Brax
# inverted_pendulum, 3 seeds, 4,000 env steps (1,000 of them random warm-up), sized for a 2-core CPU.
# Each algorithm is its shipped config (configs/<algo>/inverted_pendulum.yaml: 10 updates per env
# step for MBPO and Dyna, 1 for SAC) with 128-wide actor and critic for all three and, for the two
# model-based ones, a 4 x 128 ensemble trained for at most 20 epochs per refit and 20k rollouts
# per refit (shipped: 4 x 200, 50 epochs, 100k / 50k).
_SMALL_MODEL = {"model_hidden": [128, 128, 128, 128], "model_max_epochs": 20, "rollout_batch_size": 20_000}
DEFAULT_COMPARE = {
    "name": "default",
    "configs": [{"config": "mbpo/inverted_pendulum", "name": "mbpo", **_SMALL_MODEL},
                {"config": "dyna/inverted_pendulum", "name": "dyna", **_SMALL_MODEL},
                {"config": "sac/inverted_pendulum", "name": "sac"}],
    "set": {"total_steps": 4000, "warmup_steps": 1000, "eval_every": 250, "actor_hidden": [128, 128],
            "critic_hidden": [128, 128]},
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jaxdyna")
    except PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise ConfigError(f"{self.prog}: {message}")


def _default_out(cfg) -> Path:
    return Path("results") / "runs" / f"{cfg.algo}-{cfg.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resolve_all(sources: list[dict], overrides: list[str]):
    """Resolve every config (with the same --set overrides) before anything runs or is written."""
    from jaxdyna import config as C

    extra = C.parse_set(overrides or [])
    return [C.resolve({**values, **extra}) for values in sources]


def _check_batching(args) -> None:
    """An unknown --batching: one-line error before any work (without starting JAX's backend,
    whose device count `cores_for_groups` may still set)."""
    from jaxdyna.sweep import BATCHING

    if args.batching not in BATCHING:
        raise ConfigError(f"--batching: unknown {args.batching!r}; allowed: {', '.join(BATCHING)}")


def _check_common(args) -> None:
    _check_batching(args)
    if args.seeds < 1:
        raise ConfigError(f"--seeds: must be a positive integer, got {args.seeds}")


def cmd_run(args) -> int:
    """One config over N seeds: a sweep of one group (chunked, checkpointed, resumable)."""
    import hashlib
    import json

    import jax
    import numpy as np
    import yaml

    from jaxdyna import config as C
    from jaxdyna.io import write_json, write_text
    from jaxdyna.results import plot_curves
    from jaxdyna.sweepfile import Group, Plan, Setting, default_chunk_evals

    _check_common(args)
    values = dict(DEFAULT_RUN) if args.config is None else C.load_yaml(args.config)
    if args.config is not None and not values:
        raise ConfigError(f"config: {args.config} is empty; give at least algo and env (see configs/)")
    [(cfg, hp)] = _resolve_all([values], args.set)
    out = Path(args.out) if args.out else _default_out(cfg)
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    resolved = C.to_dict(cfg, hp)
    group = Group(index=0, cfg=cfg, settings=[Setting(label=cfg.algo, values={}, hp=hp)], seeds=seeds,
                  chunk_evals=default_chunk_evals(cfg.num_evals))
    digest = hashlib.sha256(json.dumps({"config": resolved, "seeds": seeds}, sort_keys=True).encode()).hexdigest()[:16]
    plan = Plan(groups=[group], swept_keys=[], source={"config": resolved, "seeds": seeds}, digest=digest,
                name=Path(args.config).stem if args.config else "default")
    config_text = yaml.safe_dump({**resolved, "seeds": seeds}, sort_keys=False)
    outcome = _execute(plan, out, config_text, args,
                       intro=lambda: f"jaxdyna: {cfg.algo} on {cfg.env} ({cfg.backend}), {args.seeds} seed(s), "
                                     f"{cfg.total_steps} env steps, device {jax.devices()[0].device_kind}; writing {out}",
                       resume_hint="the same command and --resume")
    if isinstance(outcome, int):              # stopped early: the exit code
        return outcome
    summary = outcome.summary
    g = summary["groups"]["g00"]
    with np.load(out / "groups" / "g00" / "metrics.npz") as metrics:
        steps, returns = metrics["env_steps"][0], metrics["eval_return"]
    summary.update({"algo": cfg.algo, "env": cfg.env, "backend": cfg.backend,
                    "compile_seconds": g["compile_seconds"], "run_seconds": g["run_seconds"],
                    "env_steps_per_second": float(steps[-1]) * len(seeds) / max(g["run_seconds"] or 0.0, 1e-9)})
    write_json(out / "summary.json", summary)
    write_text(out / "config.yaml", config_text)
    plot_curves(out / "returns.png", [(cfg.algo, steps, returns)], title=f"{cfg.algo} on {cfg.env} ({cfg.backend})",
                footer=f"{summary['command']} | {summary['git_revision']} | {summary['device']}")
    finals = [r["final_return"] for r in summary["runs"]]
    print(f"jaxdyna: {cfg.algo} final eval return {sum(finals) / len(finals):.1f} (mean of {len(finals)} seeds); "
          f"compile {g['compile_seconds']:.1f}s, run {g['run_seconds']:.1f}s; wrote {out}", file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    """Several configs on the same seeds: a sweep of them, then its report (default: the built-in
    MBPO vs Dyna vs SAC comparison on inverted_pendulum)."""
    import jax
    import yaml

    from jaxdyna import config as C
    from jaxdyna.sweepfile import describe, plan_sweep

    _check_common(args)
    if args.configs:
        data = {"name": "compare", "configs": list(args.configs), "set": {}}
    else:
        data = copy.deepcopy(DEFAULT_COMPARE)
    data["seeds"] = list(range(args.seed0, args.seed0 + args.seeds))
    data["set"] = {**data["set"], **C.parse_set(args.set or [])}
    plan = plan_sweep(data)
    envs = sorted({g.cfg.env for g in plan.groups})
    if len(envs) > 1:
        raise ConfigError(f"configs: compare needs one env, got {', '.join(envs)}")
    out = Path(args.out) if args.out else Path("results") / "runs" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    outcome = _execute(plan, out, yaml.safe_dump(data, sort_keys=False), args,
                       intro=lambda: describe(plan) + f"\njaxdyna: {len(jax.devices())} device(s) "
                       f"({jax.devices()[0].device_kind}); writing {out}",
                       resume_hint=f"the same command with --out {out} --resume")
    if isinstance(outcome, int):              # stopped early: the exit code
        return outcome
    report = _sweep_report(out, args)
    for env, e in report["envs"].items():
        for arm in e["arms"]:
            fr = arm.get("final_return", {})
            print(f"jaxdyna: {arm['label']} on {env}: final eval return mean {fr.get('mean', float('nan')):.1f}, "
                  f"IQM {fr.get('iqm', float('nan')):.1f} ({arm['runs']} seeds, {arm['final_env_steps'][-1]:,} env steps)",
                  file=sys.stderr)
    print(f"jaxdyna: wrote {out}; plots and statistics in {out / 'report'}", file=sys.stderr)
    return 0


def _execute(plan, out: Path, source_text: str, args, intro, resume_hint: str):
    """Check --out and memory, print `intro()`, run the plan; the outcome, or the exit code when it
    stopped early (Ctrl-C: 130; --time-limit: EXIT_TIME_LIMIT). What finished is kept and the directory
    is marked incomplete, for --resume."""
    import jax

    from jaxdyna.loggers import make_loggers
    from jaxdyna.runner import prepare_out, run_plan, worker_meshes
    from jaxdyna.sweep import _available_bytes
    from jaxdyna.sweepfile import fit_memory

    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite: choose one")
    if not (getattr(args, "distributed", False) or getattr(args, "num_processes", None)):
        cores_for_groups(len(plan.groups))
    prepare_out(out, plan, args.resume, args.overwrite)
    fit_memory(plan, _available_bytes(), devices=len(jax.devices()), shared=jax.default_backend() == "cpu")
    loggers = make_loggers(out, plan, tensorboard=not args.no_tensorboard, wandb_project=args.wandb) \
        if jax.process_index() == 0 else []
    if jax.process_index() == 0:
        workers = worker_meshes(plan.groups, plan.side_by_side)
        side = (f"\njaxdyna: up to {len(workers)} groups at a time, side by side on {workers[0].size} device(s) each"
                if len(workers) > 1 else "")
        print(intro() + side, file=sys.stderr, flush=True)
    stopped = (f"jaxdyna: stopped; finished evaluations are in {out} (marked incomplete); "
               f"continue with: {resume_hint}")
    try:
        outcome = run_plan(plan, out, source_text, args.command_line, batching=args.batching, resume=args.resume,
                           show_progress=not args.quiet, loggers=loggers, time_limit=args.time_limit)
    except KeyboardInterrupt:                 # before the loop's own handler, or a second Ctrl-C
        outcome = None
    if outcome is None or not outcome.complete:
        print(stopped, file=sys.stderr)
        return EXIT_TIME_LIMIT if outcome is not None and outcome.timed_out else 130
    return outcome


def cores_for_groups(groups: int) -> None:
    """On CPU, one XLA device per core (at most one per group) so that a sweep's groups run side
    by side, each on one core with the numerics of a one-device run. Left alone when the device
    count was set (`XLA_FLAGS=--xla_force_host_platform_device_count=N`) or JAX already started."""
    import os

    import jax

    if groups < 2 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") \
            or jax.config.jax_num_cpu_devices != -1:
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        return
    n = min(len(os.sched_getaffinity(0)), groups)
    if n > 1:
        jax.config.update("jax_num_cpu_devices", n)


def cmd_sweep(args) -> int:
    """A sweep file: groups of runs, each one compiled program, checkpointed chunk by chunk."""
    from jaxdyna.sweepfile import describe, load_sweep, plan_sweep

    import jax

    _init_distributed(args)                      # before anything that starts the XLA backend
    _check_batching(args)
    path = Path(args.sweep)
    data = load_sweep(path)
    plan = plan_sweep(data, base=path.parent)
    plan.name = str(data.get("name", path.stem))
    out = Path(args.out) if args.out else Path("results") / "sweeps" / path.stem
    outcome = _execute(plan, out, path.read_text(), args,
                       intro=lambda: describe(plan) + f"\njaxdyna: {len(jax.devices())} device(s) "
                       f"({jax.devices()[0].device_kind}), {jax.process_count()} process(es); writing {out}",
                       resume_hint=f"jaxdyna sweep {args.sweep} --out {out} --resume")
    if isinstance(outcome, int):              # stopped early: the exit code
        return outcome
    if jax.process_index() == 0:
        _sweep_report(out, args)
        print(f"jaxdyna: sweep complete; wrote {out}", file=sys.stderr)
    if jax.process_count() > 1:           # every process leaves together once process 0 has written
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("jaxdyna-sweep-done")
    return 0


def _init_distributed(args) -> None:
    """Join a multi-process run (one process per host, or several on one machine) before JAX starts.

    `--distributed` alone lets `jax.distributed.initialize()` read the cluster from the
    environment (Slurm, Open MPI, TPU pods); `--coordinator HOST:PORT --num-processes N
    --process-id I` says it explicitly. CPU processes talk over gloo.
    """
    explicit = [args.coordinator, args.num_processes, args.process_id]
    if not args.distributed and all(v is None for v in explicit):
        return
    if any(v is None for v in explicit) and not all(v is None for v in explicit):
        raise ConfigError("--coordinator, --num-processes and --process-id: give all three (or --distributed alone)")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(v is None for v in explicit):
        jax.distributed.initialize()
    else:
        if not 0 <= args.process_id < args.num_processes:
            raise ConfigError(f"--process-id: must be in [0, {args.num_processes}), got {args.process_id}")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    # eager work (building envs, shapes) stays on this process's own devices
    jax.config.update("jax_default_device", jax.local_devices()[0])
    from jaxdyna.envs import keep_mjx_on_local_devices
    keep_mjx_on_local_devices()


def _sweep_report(out: Path, args) -> dict:
    """The report of a finished sweep in `out/report` (as in its report.json)."""
    from jaxdyna.report import DEFAULT_REPS, analyze, load_runs, write_report

    table = load_runs([str(out)])
    return write_report(out / "report", table, analyze(table, None, reps=DEFAULT_REPS, seed=0),
                        args.command_line, DEFAULT_REPS, 0)


def cmd_render(args) -> int:
    """One deterministic episode of a run's final policy, written as a replay a person can open."""
    from jaxdyna.render import render

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"RUN_DIR: no such directory {run_dir}")
    path, ret, length = render(run_dir, args.seed, args.config, Path(args.out) if args.out else None)
    print(f"jaxdyna: wrote {path} (one episode of {length} steps, return {ret:.1f})", file=sys.stderr)
    return 0


EXIT_TIME_LIMIT = 75      # EX_TEMPFAIL: --time-limit stopped a run that --resume continues


def parse_duration(text: str) -> float:
    """--time-limit: seconds, or a number with a unit (s, m, h), e.g. 9.5m or 2h."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    scale = units.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t) * (scale or 1.0)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive duration in seconds or with a unit s, m or h "
                                         f"(e.g. 600, 9.5m, 2h), got {text!r}")
    return value


def _run_flags(p) -> None:
    """Flags of every command that runs a plan."""
    p.add_argument("--time-limit", type=parse_duration, metavar="DURATION",
                   help="wall-clock limit (600, 9.5m, 2h): no chunk starts that would, at the last chunk's pace, "
                   f"end past it; the run stops resumable (--resume) with exit code {EXIT_TIME_LIMIT}")
    _logging_flags(p)


def _logging_flags(p) -> None:
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files (DIR/tb)")
    p.add_argument("--wandb", metavar="PROJECT", help="also log every run to Weights & Biases project PROJECT "
                   "(needs the wandb extra; WANDB_MODE=offline logs without a network)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jaxdyna", description="Dyna-style model-based RL in JAX on Brax.")
    p.add_argument("--version", action="version", version=f"jaxdyna {_version()}")
    p.add_argument("--no-cache", action="store_true", help="do not use the persistent compilation cache")
    p.add_argument("--verbose", action="store_true", help="show third-party notices that are hidden by default")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    r = sub.add_parser("run", help="run one config over N seeds (one vmapped program)")
    r.add_argument("config", nargs="?", help="YAML config (default: a small built-in SAC job)")
    r.add_argument("--seeds", type=int, default=1, help="number of seeds run in parallel (default 1)")
    r.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    r.add_argument("--out", help="output directory (default results/runs/<algo>-<env>-<time>)")
    r.add_argument("--batching", default="auto", help="seeds as vmap (parallel) or map (sequential, "
                   "bit-identical to single-seed runs); auto = map on CPU, vmap on accelerators")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    r.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _run_flags(r)
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="run several configs on the same seeds as one sweep, then its report "
                       "(default: MBPO vs Dyna vs SAC on inverted_pendulum, sized for a laptop CPU)")
    c.add_argument("configs", nargs="*", help="YAML configs or shipped algo/env names (default: the built-in "
                   "MBPO vs Dyna vs SAC comparison)")
    c.add_argument("--seeds", type=int, default=3, help="seeds per config (default 3)")
    c.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key in every config")
    c.add_argument("--out", help="output directory (default results/runs/compare-<time>)")
    c.add_argument("--batching", default="auto", help="auto | vmap | map (see run --help)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    c.add_argument("--resume", action="store_true", help="continue an interrupted comparison in --out")
    _run_flags(c)
    c.set_defaults(func=cmd_compare)
    w = sub.add_parser("sweep", help="run a sweep file (configs x grid x seeds; resumable, sharded over devices)")
    w.add_argument("sweep", help="sweep YAML: configs, seeds, set, grid (see README)")
    w.add_argument("--out", help="output directory (default results/sweeps/<sweep file name>)")
    w.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    w.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    w.add_argument("--batching", default="auto", help="auto | vmap | map (see run --help)")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.add_argument("--distributed", action="store_true",
                   help="multi-host: jax.distributed.initialize() from the environment (e.g. under Slurm srun)")
    w.add_argument("--coordinator", help="multi-process: HOST:PORT of process 0")
    w.add_argument("--num-processes", type=int, help="multi-process: number of processes")
    w.add_argument("--process-id", type=int, help="multi-process: this process's index")
    _run_flags(w)
    w.set_defaults(func=cmd_sweep)
    v = sub.add_parser("render", help="write a replay of a run's final policy (Brax: HTML viewer; "
                       "Playground: GIF or MP4 where MuJoCo can render)")
    v.add_argument("run_dir", help="a run, sweep or compare output directory (its checkpoints hold the final policy)")
    v.add_argument("--seed", type=int, help="which seed (default: the first run)")
    v.add_argument("--config", help="which config, in a sweep or comparison of several")
    v.add_argument("--out", help="output file (default RUN_DIR/<config>-seed<N>.html for Brax, .gif for "
                   "Playground; .mp4 needs ffmpeg)")
    v.set_defaults(func=cmd_render)
    from jaxdyna.report import add_report_parser
    add_report_parser(sub)
    try:
        from jaxdyna.tabular.cli import add_maze_parser
    except ImportError:
        pass
    else:
        add_maze_parser(sub)
    return p


def _input_errors() -> tuple[type[Exception], ...]:
    try:
        from jaxdyna.tabular.cli import MazeInputError
    except ImportError:
        return (ConfigError,)
    return (ConfigError, MazeInputError)


_NOISE = re.compile(r"Failed to import (mujoco_)?warp:")      # mujoco.mjx prints these when warp is absent
_BRAX_NOTICE = r"Brax System, piplines and environments are not actively being maintained"


def quiet_third_party() -> None:
    """Hide known third-party noise (Brax's maintenance notice, mujoco's missing-warp prints); any
    other output, and every error, still shows. `jaxdyna --verbose` skips this."""
    import contextlib
    import io
    import warnings

    warnings.filterwarnings("ignore", message=_BRAX_NOTICE)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            import mujoco.mjx  # noqa: F401  (imported by Brax later; its import-time prints happen here)
        except Exception:        # noqa: BLE001 - a broken install shows its error where it is used
            pass
    for line in printed.getvalue().splitlines():
        if not _NOISE.match(line):
            print(line)


def skip_warp() -> None:
    """Keep mujoco.mjx from importing its Warp backend. Playground depends on warp-lang, and with it
    installed `import brax` defines Warp's kernels (about 1.7 s of every command's start on a CPU
    core); jaxdyna runs MJX in JAX only (`jaxdyna.envs.PlaygroundEnv`), so the CLI never uses them."""
    sys.modules.setdefault("warp", None)       # `import warp` then fails, and mujoco.mjx goes without


def enable_compile_cache(disabled: bool = False) -> None:
    """JAX's persistent compilation cache in a user cache directory: a program compiled before
    (same code, config and device) loads in seconds. `JAXDYNA_CACHE_DIR` moves it; `--no-cache`
    turns it off."""
    import os

    if disabled or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    import jax

    root = os.environ.get("JAXDYNA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxdyna", "xla")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError:
        return                                  # an unwritable home: run without the cache
    jax.config.update("jax_compilation_cache_dir", root)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # the command recorded in every provenance block (also for `python -m jaxdyna`)
        args.command_line = "jaxdyna " + shlex.join(sys.argv[1:] if argv is None else argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        enable_compile_cache(args.no_cache)
        if args.command == "render":                # MuJoCo reads it on import: headless OpenGL by default
            import os
            os.environ.setdefault("MUJOCO_GL", "egl")
        skip_warp()
        if not args.verbose:
            quiet_third_party()
        return args.func(args)
    except _input_errors() as e:
        print(f"jaxdyna: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxdyna: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
