"""`jaxdyna` command line: run a config over many seeds in one compiled program and write results."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from jaxdyna.config import ConfigError

DEFAULT_RUN = {"algo": "sac", "env": "inverted_pendulum", "total_steps": 10_000, "warmup_steps": 1_000,
               "eval_every": 1_000, "buffer_size": 100_000, "eval_episodes": 5}


# The main job: a small MBPO-vs-SAC comparison on Brax inverted_pendulum, scaled to finish in a few
# minutes on a 2-core CPU (the paper-scale settings are in configs/mbpo and configs/sac).
_COMPARE_COMMON = {"env": "inverted_pendulum", "total_steps": 2500, "warmup_steps": 500, "eval_every": 500,
                   "buffer_size": 100_000, "eval_episodes": 5, "target_entropy": -0.05}
DEFAULT_COMPARE = [
    {**_COMPARE_COMMON, "algo": "sac"},
    {**_COMPARE_COMMON, "algo": "mbpo", "updates_per_step": 5, "model_hidden": [128, 128, 128],
     "rollout_batch_size": 5000, "model_max_train": 5000, "model_max_epochs": 10, "model_retain": 4},
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise ConfigError(f"{self.prog}: {message}")


class Progress:
    """A progress bar fed from inside the compiled scan: one call per run per evaluation.

    Runs report in parallel (vmap) or one after another (map), so the bar counts evaluations
    over all runs and shows the latest one's env steps and return.
    """

    def __init__(self, runs: int, evals: int, steps_per_eval: int):
        from tqdm import tqdm

        self.t0, self.calls, self.steps_per_eval = None, 0, steps_per_eval
        self.bar = tqdm(total=runs * evals, unit="eval", file=sys.stderr, dynamic_ncols=True,
                        mininterval=0.5, desc="training")

    def __call__(self, metrics) -> None:
        now = time.perf_counter()
        if self.t0 is None:
            self.t0 = now
        self.calls += 1
        rate = (self.calls - 1) * self.steps_per_eval / max(now - self.t0, 1e-9) if self.calls > 1 else float("nan")
        self.bar.set_postfix_str(f"env_steps={int(metrics['env_steps'])} eval_return={float(metrics['eval_return']):.1f} "
                                 f"steps/s={rate:.0f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _default_out(cfg) -> Path:
    return Path("results") / "runs" / f"{cfg.algo}-{cfg.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def _resolve_all(sources: list[dict], overrides: list[str]):
    """Resolve every config (with the same --set overrides) before anything runs or is written."""
    from jaxdyna import config as C

    extra = C.parse_set(overrides or [])
    return [C.resolve({**values, **extra}) for values in sources]


def _check_common(args) -> None:
    from jaxdyna.sweep import BATCHING

    if args.batching not in BATCHING:
        raise ConfigError(f"--batching: unknown {args.batching!r}; allowed: {', '.join(BATCHING)}")
    if args.seeds < 1:
        raise ConfigError(f"--seeds: must be a positive integer, got {args.seeds}")


def _run_one(cfg, hp, args, out: Path, command: str):
    """Run one resolved config over the seeds and write its directory; returns (summary, result)."""
    import jax

    from jaxdyna import config as C
    from jaxdyna.io import provenance
    from jaxdyna.results import write_run
    from jaxdyna.sweep import run_sweep

    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    print(f"jaxdyna: {cfg.algo} on {cfg.env} ({cfg.backend}), {args.seeds} seed(s), {cfg.total_steps} env steps, "
          f"device {jax.devices()[0].device_kind}", file=sys.stderr)
    progress = None if args.quiet else Progress(args.seeds, cfg.num_evals, cfg.eval_every)
    try:
        result = run_sweep(cfg, [hp], seeds, progress_fn=progress, batching=args.batching)
    finally:
        if progress is not None:
            progress.close()
    summary = write_run(out, C.to_dict(cfg, hp), [C.to_dict(cfg, hp)], result, provenance(command),
                        labels=[cfg.algo])
    finals = [r["final_return"] for r in summary["runs"]]
    print(f"jaxdyna: {cfg.algo} final eval return {sum(finals) / len(finals):.1f} (mean of {len(finals)} seeds); "
          f"compile {summary['compile_seconds']:.1f}s, run {summary['run_seconds']:.1f}s, "
          f"{summary['env_steps_per_second']:.0f} env steps/s; wrote {out}", file=sys.stderr)
    return summary, result


def cmd_run(args) -> int:
    from jaxdyna import config as C
    from jaxdyna.sweep import check_fits

    _check_common(args)
    [(cfg, hp)] = _resolve_all([dict(DEFAULT_RUN) if args.config is None else C.load_yaml(args.config)], args.set)
    out = Path(args.out) if args.out else _default_out(cfg)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    check_fits(cfg, hp, args.seeds)
    _run_one(cfg, hp, args, out, args.command_line)
    return 0


def cmd_compare(args) -> int:
    """Several configs (default: small MBPO vs SAC), same seeds, one plot of all of them."""
    from jaxdyna import config as C
    from jaxdyna.io import provenance, write_json
    from jaxdyna.results import plot_curves, steps_to_threshold
    from jaxdyna.sweep import check_fits

    _check_common(args)
    sources = [C.load_yaml(p) for p in args.configs] if args.configs else [dict(v) for v in DEFAULT_COMPARE]
    resolved = _resolve_all(sources, args.set)
    envs = {cfg.env for cfg, _ in resolved}
    if len(envs) > 1:
        raise ConfigError(f"configs: compare needs one env, got {', '.join(sorted(envs))}")
    labels = [cfg.algo for cfg, _ in resolved]
    labels = [l if labels.count(l) == 1 else f"{l}-{i}" for i, l in enumerate(labels)]
    out = Path(args.out) if args.out else Path("results") / "runs" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    for cfg, hp in resolved:
        check_fits(cfg, hp, args.seeds)
    command = args.command_line
    curves, table = [], {}
    for label, (cfg, hp) in zip(labels, resolved):
        summary, result = _run_one(cfg, hp, args, out / label, command)
        steps, returns = result.metrics["env_steps"][0], result.metrics["eval_return"]
        curves.append((label, steps, returns))
        table[label] = {"final_return_mean": float(returns[:, -1].mean()),
                        "run_seconds": summary["run_seconds"], "compile_seconds": summary["compile_seconds"]}
    best = max(float(r.mean(0).max()) for _, _, r in curves)
    for label, steps, returns in curves:
        hits = [steps_to_threshold(steps, r, 0.9 * best) for r in returns]
        table[label]["env_steps_to_90pct_of_best_mean"] = hits
    prov = provenance(command)
    env = next(iter(envs))
    plot_curves(out / "comparison.png", curves, title=f"{' vs '.join(labels)} on {env}",
                footer=f"{command} | {prov['git_revision']} | {prov['device']}")
    write_json(out / "comparison.json", {"env": env, "seeds": args.seeds, "algorithms": table, **prov})
    print(f"jaxdyna: wrote {out / 'comparison.png'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="jaxdyna", description="Dyna-style model-based RL in JAX on Brax.")
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
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("compare", help="run several configs on the same seeds and plot them together "
                       "(default: a small MBPO vs SAC comparison on inverted_pendulum)")
    c.add_argument("configs", nargs="*", help="YAML configs (default: built-in small MBPO and SAC)")
    c.add_argument("--seeds", type=int, default=2, help="seeds per config (default 2)")
    c.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key in every config")
    c.add_argument("--out", help="output directory (default results/runs/compare-<time>)")
    c.add_argument("--batching", default="auto", help="auto | vmap | map (see run --help)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_compare)
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # the command recorded in every provenance block (also for `python -m jaxdyna`)
        args.command_line = "jaxdyna " + shlex.join(sys.argv[1:] if argv is None else argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except _input_errors() as e:
        print(f"jaxdyna: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxdyna: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
