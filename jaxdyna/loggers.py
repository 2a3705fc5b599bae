"""Where users already look: TensorBoard event files and (optionally) Weights & Biases.

Both are fed on the host after each checkpointed chunk, from the metrics the chunk returned;
nothing here runs inside the compiled program. A logger gets, per chunk, the group, the rows
(setting, seed) of the runs in it and their metrics `[run, eval]`; it logs every scalar metric
of every run at its env step.

    jaxdyna sweep S.yaml                      # TensorBoard: tensorboard --logdir DIR/tb
    jaxdyna sweep S.yaml --wandb my-project   # also W&B (pip install -e ".[wandb]"; WANDB_MODE=offline works)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from jaxdyna import config as C
from jaxdyna.config import ConfigError


def run_label(setting, seed: int) -> str:
    """A run's name: its config label, swept values and seed."""
    vals = ",".join(f"{k}={v}" for k, v in setting.values.items())
    return f"{setting.label}[{vals}]/seed{seed}" if vals else f"{setting.label}/seed{seed}"


def scalars(m: dict[str, np.ndarray], r: int) -> Iterator[tuple[int, dict[str, float]]]:
    """(env_steps, {metric: value}) of run `r` for each evaluation in the chunk (finite scalars only)."""
    for e in range(m["eval_return"].shape[1]):
        yield int(m["env_steps"][r, e]), {k: float(v[r, e]) for k, v in m.items()
                                          if k != "env_steps" and np.ndim(v[r, e]) == 0 and np.isfinite(v[r, e])}


class TensorBoard:
    """One event-file directory per run under `root/<group>/<run label>`."""

    def __init__(self, root: Path):
        from tensorboardX import SummaryWriter     # a dependency (brax needs it too)

        self.root, self._writer_cls = root, SummaryWriter

    def log(self, group, rows, m: dict[str, np.ndarray]) -> None:
        for r, (setting, seed) in enumerate(rows):
            with self._writer_cls(str(self.root / group.name / run_label(setting, seed).replace("/", "_"))) as w:
                for step, values in scalars(m, r):
                    for k, v in values.items():
                        w.add_scalar(k, v, step)

    def close(self) -> None:
        pass


class WandB:
    """One W&B run per (setting, seed), grouped by sweep; ids derive from the sweep's digest so a
    `--resume` continues the same W&B runs instead of starting new ones."""

    def __init__(self, project: str, plan, out: Path):
        try:
            import wandb
        except ImportError:
            raise ConfigError("--wandb: the wandb package is not installed; pip install -e \".[wandb]\" "
                              "(or drop --wandb)") from None
        self.wandb, self.project, self.plan, self.out = wandb, project, plan, out
        self.runs: dict[str, Any] = {}

    def _run(self, group, setting, seed):
        label = run_label(setting, seed)
        if label not in self.runs:
            run_id = hashlib.sha256(f"{self.plan.digest}/{group.name}/{label}".encode()).hexdigest()[:16]
            self.runs[label] = self.wandb.init(
                project=self.project, group=self.plan.name, name=label, id=run_id, resume="allow",
                dir=str(self.out), reinit="create_new", job_type=group.cfg.algo,
                config={**C.to_dict(group.cfg, setting.hp), "seed": seed, "config": setting.label, **setting.values})
        return self.runs[label]

    def log(self, group, rows, m: dict[str, np.ndarray]) -> None:
        for r, (setting, seed) in enumerate(rows):
            run = self._run(group, setting, seed)
            for step, values in scalars(m, r):
                run.log({**values, "env_steps": step}, step=step)

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()
        self.runs.clear()


def make_loggers(out: Path, plan, tensorboard: bool = True, wandb_project: str | None = None) -> list:
    loggers: list = []
    if tensorboard:
        try:
            loggers.append(TensorBoard(out / "tb"))
        except ImportError:
            pass
    if wandb_project:
        loggers.append(WandB(wandb_project, plan, out))
    return loggers
