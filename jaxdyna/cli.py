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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise ConfigError(f"{self.prog}: {message}")


class Progress:
    """A progress bar fed from inside the compiled scan (one call per run per evaluation)."""

    def __init__(self, runs: int, evals: int, steps_per_eval: int):
        from tqdm import tqdm

        self.runs, self.calls, self.t0 = runs, 0, None
        self.steps_per_eval = steps_per_eval
        self.bar = tqdm(total=evals, unit="eval", file=sys.stderr, dynamic_ncols=True,
                        mininterval=0.5, desc="training")
        self.returns: list[float] = []

    def __call__(self, metrics) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        self.calls += 1
        self.returns.append(float(metrics["eval_return"]))
        if self.calls % self.runs == 0:
            done = self.calls // self.runs
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            rate = (done - 1) * self.steps_per_eval * self.runs / elapsed if done > 1 else float("nan")
            self.bar.set_postfix_str(f"env_steps={int(metrics['env_steps'])} "
                                     f"eval_return={sum(self.returns) / len(self.returns):.1f} "
                                     f"steps/s={rate:.0f}", refresh=False)
            self.returns = []
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _default_out(cfg) -> Path:
    return Path("results") / "runs" / f"{cfg.algo}-{cfg.env}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_run(args) -> int:
    from jaxdyna import config as C

    values = dict(DEFAULT_RUN) if args.config is None else C.load_yaml(args.config)
    values.update(C.parse_set(args.set or []))
    cfg, hp = C.resolve(values)
    from jaxdyna.sweep import BATCHING

    if args.batching not in BATCHING:
        raise ConfigError(f"--batching: unknown {args.batching!r}; allowed: {', '.join(BATCHING)}")
    if args.seeds < 1:
        raise ConfigError(f"--seeds: must be a positive integer, got {args.seeds}")
    out = Path(args.out) if args.out else _default_out(cfg)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")

    import jax

    from jaxdyna.io import provenance
    from jaxdyna.results import write_run
    from jaxdyna.sweep import check_fits, run_sweep

    check_fits(cfg, hp, args.seeds)
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    print(f"jaxdyna: {cfg.algo} on {cfg.env} ({cfg.backend}), {args.seeds} seed(s), {cfg.total_steps} env steps, "
          f"device {jax.devices()[0].device_kind}", file=sys.stderr)
    progress = None if args.quiet else Progress(args.seeds, cfg.num_evals, cfg.eval_every)
    try:
        result = run_sweep(cfg, [hp], seeds, progress_fn=progress, batching=args.batching)
    finally:
        if progress is not None:
            progress.close()
    command = "jaxdyna " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if args.argv is None else args.argv
    summary = write_run(out, C.to_dict(cfg, hp), [C.to_dict(cfg, hp)], result, provenance(command),
                        labels=[cfg.algo])
    finals = [r["final_return"] for r in summary["runs"]]
    print(f"jaxdyna: final eval return {sum(finals) / len(finals):.1f} (mean of {len(finals)} seeds); "
          f"compile {summary['compile_seconds']:.1f}s, run {summary['run_seconds']:.1f}s, "
          f"{summary['env_steps_per_second']:.0f} env steps/s; wrote {out}", file=sys.stderr)
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
    r.set_defaults(func=cmd_run, argv=None)
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
