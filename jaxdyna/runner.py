"""Running a planned sweep: each group's compiled programs, advanced chunk by chunk.

The host loop per group (and part, when a group is split to fit in memory):

    compile init / chunk / end_period once -> init (or restore the latest checkpoint)
    repeat: advance one chunk of evaluation periods (per period, one call of the compiled `chunk`
            scan per model refit and one of `end_period`, the evaluation, all dispatched back to
            back; the hot path never leaves a compiled scan) -> checkpoint every run's
            state with orbax (atomic, written on a thread while the next chunk runs) -> write
            the metrics so far -> update progress -> stop here if Ctrl-C was pressed (saving the
            last chunk first)

The run axis (settings x seeds) is sharded over every device of a global mesh (`shard_map`;
padded to a multiple of the device count) and, on each device, `vmap`ped or `lax.map`ped.
With `jax.distributed.initialize()` the same code spans hosts: every process builds the same
plan, feeds the rows of its own devices and takes part in the checkpoints; process 0 writes the
outputs.

Outputs in the sweep directory:
    sweep.yaml      the sweep file as given        sweep.json   plan, status, digest, provenance
    metrics.csv     one row per run per evaluation: config, algo, env, swept keys, seed,
                    env_steps, eval_return, diagnostics, diverged
    groups/gNN/     config.yaml (the group's resolved config), metrics.npz (the metrics so far)
    checkpoints/    orbax checkpoints of each group's state        tb/  TensorBoard event files
    summary.json    per run: final / best return, diverged; per group: compile and run seconds
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import shutil
import signal
import sys
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxdyna import config as C
from jaxdyna.config import ConfigError, stack_hparams
from jaxdyna.io import atomic_path, check_writable_dir, provenance, write_json, write_text
from jaxdyna.loggers import run_label
from jaxdyna import programs
from jaxdyna.sweep import batched, resolve_batching, run_keys
from jaxdyna.sweepfile import Group, Plan
from jaxdyna.train import make_train

LOSSES = ("critic_loss", "actor_loss", "alpha_loss", "q_mean")
STATUS_FILE = "sweep.json"


class Interrupt:
    """SIGINT / SIGTERM set a flag; the loop stops after the chunk in flight (a second Ctrl-C aborts)."""

    def __init__(self):
        self.requested = False
        self.timed_out = False          # set when a time limit, not a signal, stopped the loop
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:            # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\njaxdyna: stopping after the chunk in flight (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class Outcome:
    complete: bool
    summary: dict[str, Any]
    timed_out: bool = False         # stopped by `time_limit` (resumable), not by a signal


# --- the run axis over devices ------------------------------------------------------------
def _mesh(devices=None) -> Mesh:
    return Mesh(np.array(jax.devices() if devices is None else devices), ("runs",))


def worker_meshes(pending: list[Group], side_by_side: int | None = None) -> list[Mesh]:
    """The device blocks that run groups side by side: one block per worker, the local devices
    dealt out evenly (one worker with every device when one group is pending, across processes,
    or when only `side_by_side` groups fit in memory at once)."""
    devices = jax.devices()
    workers = min(len(devices), len(pending), side_by_side or len(pending))
    if jax.process_count() > 1 or workers < 2:
        return [_mesh(devices)]
    per = len(devices) // workers
    return [_mesh(devices[i * per:(i + 1) * per]) for i in range(workers)]


def _over_devices(fn: Callable, mesh: Mesh) -> Callable:
    """`fn` (over a leading run axis) applied per device to its block of runs."""
    if mesh.size == 1:
        return fn
    spec = PartitionSpec("runs")
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)


def _put(x: np.ndarray, mesh: Mesh):
    """A global array sharded on its leading axis; each process supplies its own devices' rows."""
    x = np.asarray(x)
    sharding = NamedSharding(mesh, PartitionSpec("runs"))
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _fetch(tree):
    """Every run's values on the host (gathered across processes)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
    return jax.tree_util.tree_map(np.asarray, tree)


def _all_finite(state) -> jax.Array:
    leaves = jax.tree_util.tree_leaves((state.agent, state.model))
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)]))


# --- outputs ------------------------------------------------------------------------------
def _group_rows(plan: Plan, group: Group, metrics: dict[str, np.ndarray], diverged: np.ndarray) -> list[dict]:
    rows = []
    table = group.run_table()
    names = [k for k in sorted(metrics) if k not in ("env_steps", "eval_return")]
    for r, (setting, seed) in enumerate(table[: metrics["eval_return"].shape[0]]):
        for e in range(metrics["eval_return"].shape[1]):
            row = {"config": setting.label, "algo": group.cfg.algo, "env": group.cfg.env}
            row.update({k: setting.values.get(k, _value_of(group, setting, k)) for k in plan.swept_keys})
            row.update({"seed": seed, "env_steps": int(metrics["env_steps"][r, e]),
                        "eval_return": float(metrics["eval_return"][r, e])})
            for k in names:
                v = metrics[k][r, e]
                row[k] = float(v) if np.ndim(v) == 0 else " ".join(map(str, np.ravel(v)))
            row["diverged"] = int(diverged[r])
            rows.append(row)
    return rows


def _value_of(group: Group, setting, key: str):
    return getattr(group.cfg, key) if key in C.CONFIG_FIELDS else float(getattr(setting.hp, key))


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    tail = [k for k in fields if k == "diverged"]
    fields = [k for k in fields if k != "diverged"] + tail
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


class Outputs:
    """Everything the sweep writes (process 0 only); rebuilt from the groups' files after each chunk."""

    def __init__(self, plan: Plan, out: Path, command: str, writer: bool):
        self.plan, self.out, self.writer = plan, out, writer
        self.prov = provenance(command)
        self.status: dict[str, Any] = {}

    def group_dir(self, g: Group) -> Path:
        return self.out / "groups" / g.name

    def start(self, sweep_text: str, resume: bool) -> None:
        """Every process holds the status (it decides which groups still run); process 0 writes."""
        if resume and (self.out / STATUS_FILE).is_file():
            self.status = json.loads((self.out / STATUS_FILE).read_text())
        else:
            if self.writer:
                write_text(self.out / "sweep.yaml", sweep_text)
            self.status = {"name": self.plan.name, "digest": self.plan.digest, "complete": False,
                           "swept_keys": self.plan.swept_keys, "runs": self.plan.runs,
                           "groups": {g.name: {"status": "pending", "evals_done": 0, "runs": g.runs,
                                               "algo": g.cfg.algo, "env": g.cfg.env,
                                               "configs": sorted({s.label for s in g.settings})}
                                      for g in self.plan.groups}}
        self.status["provenance"] = self.prov
        if not self.writer:
            return
        for g in self.plan.groups:
            settings = [{"config": s.label, **s.values} for s in g.settings]
            write_text(self.group_dir(g) / "config.yaml",
                       yaml.safe_dump({**C.to_dict(g.cfg, g.settings[0].hp), "seeds": g.seeds}, sort_keys=False)
                       + yaml.safe_dump({"settings": settings}, sort_keys=False))
        self.save_status()

    def save_status(self) -> None:
        if self.writer:
            write_json(self.out / STATUS_FILE, self.status)

    def group_done(self, g: Group) -> bool:
        return self.status.get("groups", {}).get(g.name, {}).get("status") == "done"

    def record(self, g: Group, metrics: dict[str, np.ndarray], diverged: np.ndarray, evals_done: int,
               done: bool, seconds: dict[str, float], chunk_seconds: list[float] = ()) -> None:
        if not self.writer:
            return
        _save_npz(self.group_dir(g) / "metrics.npz", {**metrics, "_diverged": diverged.astype(np.int8)})
        entry = self.status["groups"][g.name]
        entry.update({"status": "done" if done else "running", "evals_done": evals_done,
                      "diverged": [run_label(s, seed) for (s, seed), d in zip(g.run_table(), diverged) if d],
                      **{k: round(v, 2) for k, v in seconds.items()}})
        if chunk_seconds:
            entry["chunk_seconds"] = [round(t, 3) for t in chunk_seconds]
        self.rebuild_csv()
        self.save_status()          # last: the status never claims evaluations not yet in metrics.csv

    def rebuild_csv(self) -> None:
        rows = []
        for g in self.plan.groups:
            path = self.group_dir(g) / "metrics.npz"
            if path.is_file():
                m = _load_npz(path)
                diverged = m.pop("_diverged").astype(bool)
                rows += _group_rows(self.plan, g, m, diverged)
        if rows:
            _write_csv(self.out / "metrics.csv", rows)

    def finish(self, complete: bool) -> dict[str, Any]:
        summary = {"name": self.plan.name, "complete": complete, "wall_seconds": self.status.get("wall_seconds"),
                   "runs": [], "groups": {}, **self.prov}
        for g in self.plan.groups:
            path = self.group_dir(g) / "metrics.npz"
            entry = self.status["groups"][g.name]
            summary["groups"][g.name] = {k: entry.get(k) for k in ("status", "evals_done", "compile_seconds",
                                                                   "run_seconds", "chunk_seconds", "algo", "env")}
            if not path.is_file():
                continue
            m = _load_npz(path)
            diverged = m["_diverged"].astype(bool)
            for r, (s, seed) in enumerate(g.run_table()[: m["eval_return"].shape[0]]):
                ret = m["eval_return"][r]
                summary["runs"].append({"group": g.name, "config": s.label, **s.values, "seed": seed,
                                        "evals": int(ret.shape[0]), "final_return": float(ret[-1]),
                                        "best_return": float(np.nanmax(ret)) if np.isfinite(ret).any() else None,
                                        "diverged": bool(diverged[r])})
        self.status["complete"] = complete
        if self.writer:
            self.save_status()
            write_json(self.out / "summary.json", summary)
        return summary


# --- one group --------------------------------------------------------------------------------
def _state_sharding(leaf, mesh: Mesh) -> NamedSharding:
    """Where a leaf of the training state lives: split over the mesh's runs, except a zero-size
    array (MJX's `Data` has some), which XLA returns replicated from every program; `chunk` and
    `end_period` are compiled to take it that way, or a mesh of several devices refuses the state."""
    return NamedSharding(mesh, PartitionSpec() if math.prod(leaf.shape) == 0 else PartitionSpec("runs"))


def _drop_empty(tree):
    """The tree with zero-size arrays as None: orbax cannot save them (MJX's `Data` has some)."""
    return jax.tree_util.tree_map(lambda x: None if math.prod(x.shape) == 0 else x, tree)


def _restore_empty(abstract, restored):
    """Put back the zero-size arrays `_drop_empty` left out, as `abstract` describes them."""
    def fill(a, r):
        if a is None or r is not None:          # an absent part of the state (e.g. SAC's model), or restored
            return r
        return jax.device_put(np.zeros(a.shape, a.dtype), a.sharding)

    return jax.tree_util.tree_map(fill, abstract, restored, is_leaf=lambda x: x is None)


# Orbax (0.12) keys a save's background steps by one process-wide "current operation" id
# (`OperationIdGenerator`), which every save moves on. Two checkpoint managers saving at once in
# one process (groups side by side) read each other's id: a save fails with missing files in its
# temporary directory, or waits on a signal that never comes (a 300 s timeout). So a process has
# one save in flight at a time: a group's save first waits for the other groups' background saves.
_SAVE_LOCK = threading.Lock()
_MANAGERS: weakref.WeakSet = weakref.WeakSet()


def _checkpointer(path: Path):
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, enable_async_checkpointing=True,
                                        cleanup_tmp_directories=True)
    ckpt = ocp.CheckpointManager(path.resolve(), options=opts)
    _MANAGERS.add(ckpt)
    return ckpt


def _save(ckpt, step: int, state, meta: dict) -> None:
    """Checkpoint `state` as chunk `step`. Asynchronous: this waits only for the state to be copied
    to the host (and for another group's save in flight, see `_SAVE_LOCK`); orbax writes it on a
    thread (atomically: a save cut short leaves the previous checkpoint) while the next chunk runs."""
    import orbax.checkpoint as ocp

    with _SAVE_LOCK:
        for other in list(_MANAGERS):
            # polled, not `wait_until_finished()`: that would raise the other group's save error
            # here (once, and then no more in its own thread)
            while other is not ckpt and other.is_saving_in_progress():
                time.sleep(0.01)
        ckpt.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_drop_empty(state)),
                                                meta=ocp.args.JsonSave(meta)))


def _abstract(tree, mesh: Mesh):
    """Shapes (e.g. a program's `out_shapes`) as arguments placed on `mesh` the way the runner
    places the training state (`_state_sharding`)."""
    return jax.tree_util.tree_map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=_state_sharding(s, mesh)),
                                  tree)


def build_programs(init_fn: programs.Built | None, init_args: tuple, build_chunk: Callable[[], programs.Built],
                   chunk_args: tuple, build_end: Callable[[Any], programs.Built], concurrent: bool = True):
    """Compile a group's programs; returns (`chunk`, `end_period`), compiled. `init_fn` (None: a
    restored group, which needs no `init`) is compiled by XLA on a thread while `chunk` is traced
    and compiled here; `end_period`, built from `chunk`'s output shapes by `build_end`, follows
    it on that thread. XLA releases the GIL while it compiles, so tracing and the serial phases
    of one compilation overlap another (MBPO on 2 cores: 30.5 s instead of 35.2 s when `init` and
    the whole period were two programs, for 0.3 GiB more peak memory; results/compile_time).
    The programs are the same as compiled one after the other (`concurrent=False`)."""
    def compile_end(chunk: programs.Built) -> programs.Built:
        return build_end(chunk.out_shapes)

    if not concurrent:
        if init_fn is not None:
            init_fn.compile(*init_args)
        chunk = build_chunk()
        end = compile_end(chunk)
        return chunk.compile(*chunk_args), end
    with ThreadPoolExecutor(max_workers=1) as pool:
        if init_fn is not None:
            init_done = pool.submit(init_fn.compile, *init_args)
        chunk = build_chunk()
        end_done = pool.submit(compile_end, chunk)
        chunk.compile(*chunk_args)
        end = end_done.result()
        if init_fn is not None:
            init_done.result()
    return chunk, end


def _agree(flag: bool) -> bool:
    """Process 0's `flag` in every process (each decides on its own clock; a chunk is a collective
    step, so all must start it or none)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(flag)))


def run_group(plan: Plan, g: Group, outputs: Outputs, batching: str, resume: bool, stop: Interrupt,
              progress: Callable[[int, int], None], loggers: list, mesh: Mesh | None = None,
              lock: threading.Lock | None = None, deadline: float | None = None) -> bool:
    """Run (or finish) one group on `mesh` (every device by default); True when all its evaluations
    are done. `lock` guards the shared outputs when groups run side by side. With a `deadline`
    (`time.perf_counter()` seconds) no chunk starts that would, at the last chunk's pace, end after it."""
    import orbax.checkpoint as ocp

    mesh = mesh or _mesh()
    lock = lock or threading.Lock()
    n_dev = mesh.size
    table = g.run_table()
    per_part = -(-g.runs // g.parts)
    chunks = g.cfg.num_evals // g.chunk_evals
    over = lambda fn: _over_devices(batched(fn, batching), mesh)     # noqa: E731
    # built only when a program must be traced (not when all come from the program store).
    # An evaluation period is `chunks_per_eval` calls of `chunk` (a model refit and the env steps
    # up to the next), then one of `end_period` (the evaluation); a chunk of the run is
    # `chunk_evals` periods. The numbers are those of one call over the whole chunk (`advance`),
    # and no execution outlives a model refit interval: on a CPU with several devices, XLA's
    # YNNPACK dots hold memory until their execution ends (about 25 MB/s for SAC on 2 devices: a
    # 6-period chunk grew 1.59 GiB, one period 0.32; results/cpu_memory/)
    prog = functools.cache(lambda: make_train(g.cfg, num_evals=1))
    per_period = g.cfg.chunks_per_eval

    what = f"{g.cfg!r}|{resolve_batching(batching)}"
    finite_fn = jax.jit(over(_all_finite))
    part_metrics, part_diverged = [], []
    before = outputs.status["groups"][g.name] if resume else {}     # a resumed group adds to its seconds
    seconds = {k: float(before.get(k) or 0.0) for k in ("compile_seconds", "run_seconds")}
    chunk_seconds = list(before.get("chunk_seconds") or [])
    # run seconds count the chunks whose results are kept: a resume restarts from the last checkpoint,
    # which can be behind what the status recorded, and the chunks after it are timed again
    timed = "chunk_seconds" in before or not resume          # (statuses older than chunk_seconds: added to)

    def kept(chunks_kept: int, from_checkpoint=None) -> None:
        if timed:
            chunk_seconds[:] = (from_checkpoint if from_checkpoint is not None else chunk_seconds)[:chunks_kept]
            seconds["run_seconds"] = float(sum(chunk_seconds))
    done_all = True
    for part in range(g.parts):
        rows = table[part * per_part:(part + 1) * per_part]
        n = len(rows)
        pad = (-n) % n_dev
        rows_p = rows + [rows[-1]] * pad                    # padding runs repeat the last run, then are dropped
        keys = _put(np.asarray(run_keys(np.array([seed for _, seed in rows_p]))), mesh)
        hps = jax.tree_util.tree_map(lambda x: _put(np.asarray(x), mesh), stack_hparams([s.hp for s, _ in rows_p]))
        ckpt = _checkpointer(outputs.out / "checkpoints" / f"{g.name}-p{part}")
        t0 = time.perf_counter()
        init_fn = programs.build("init", what, lambda: over(prog().init), (keys, hps))
        abstract = _abstract(init_fn.out_shapes, mesh)
        restore_step = ckpt.latest_step() if resume else None

        def build_end(chunk_shapes):
            _, (last, ended) = _abstract(chunk_shapes, mesh)
            args = (abstract, (ended,) * per_period, last)
            return programs.build("end_period", what, lambda: over(prog().end_period), args, donate=0).compile(*args)

        run_chunk, end_period = build_programs(
            init_fn if restore_step is None else None, (keys, hps),
            lambda: programs.build("chunk", what, lambda: over(prog().chunk), (abstract, hps), donate=0),
            (abstract, hps), build_end)
        start, metrics, diverged, unsaved = 0, None, np.zeros(n, bool), None
        if restore_step is not None:
            restored = ckpt.restore(restore_step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_drop_empty(abstract)), meta=ocp.args.JsonRestore()))
            state, start, meta = _restore_empty(abstract, restored["state"]), int(restore_step), restored["meta"]
            metrics = {k: np.asarray(v, dtype=meta["dtypes"][k]) for k, v in meta["metrics"].items()}
            diverged = np.asarray(meta["diverged"], bool)
            kept(part * chunks + start, meta.get("chunk_seconds"))
        else:
            state = init_fn(keys, hps)
            kept(part * chunks)
        seconds["compile_seconds"] += time.perf_counter() - t0
        for c in range(start, chunks):
            if stop.requested:
                break
            if deadline is not None and _agree(time.perf_counter() + (chunk_seconds[-1] if chunk_seconds else 0.0)
                                               > deadline):
                stop.requested = stop.timed_out = True
                print(f"\njaxdyna: time limit: not starting chunk {c + 1}/{chunks} of {g.name}, which would end "
                      "past it", file=sys.stderr, flush=True)
                break
            t1 = time.perf_counter()
            period_metrics = []
            for _ in range(g.chunk_evals):                  # dispatched back to back; fetched once
                ended = []
                for _ in range(per_period):
                    state, (last, e) = run_chunk(state, hps)
                    ended.append(e)
                state, m = end_period(state, tuple(ended), last)
                period_metrics.append(m)
            finite = _fetch(finite_fn(state))[:n]
            fetched = _fetch(period_metrics)                # once: across processes it is a collective
            m = {k: np.stack([pm[k] for pm in fetched], axis=1)[:n] for k in fetched[0]}
            chunk_seconds.append(time.perf_counter() - t1)
            seconds["run_seconds"] += chunk_seconds[-1]
            losses_ok = np.all([np.all(np.isfinite(m[k]), axis=1) for k in LOSSES if k in m], axis=0)
            diverged |= ~(finite.astype(bool) & losses_ok)
            metrics = m if metrics is None else {k: np.concatenate([metrics[k], m[k]], axis=1) for k in m}
            # the metrics so far travel with the state (JSON floats round-trip exactly), so a
            # restored group rewrites exactly the outputs it had
            meta = {"chunk": c + 1, "diverged": diverged.tolist(), "metrics": {k: v.tolist() for k, v in metrics.items()},
                    "dtypes": {k: str(v.dtype) for k, v in metrics.items()}, "chunk_seconds": list(chunk_seconds)}
            # a checkpoint per chunk, unless the last one is still being written (the chunk was
            # shorter than a save): then this one is skipped and saved when the loop ends
            if _agree(not ckpt.is_saving_in_progress()) or c + 1 == chunks:
                _save(ckpt, c + 1, state, meta)
                unsaved = None
            else:
                unsaved = (c + 1, meta)
            evals = metrics["eval_return"].shape[1]
            all_m = _merge_parts(part_metrics + [metrics])
            all_d = np.concatenate(part_diverged + [diverged])
            with lock:
                outputs.record(g, all_m, all_d, evals, done=False, seconds=seconds, chunk_seconds=chunk_seconds)
                if outputs.writer:
                    for logger in loggers:
                        logger.log(g, rows, m)
                progress(n * g.chunk_evals, int(m["env_steps"].max()))
        if unsaved is not None:                 # stopped right after a chunk whose save was skipped
            _save(ckpt, unsaved[0], state, unsaved[1])
        ckpt.close()                            # waits for the last save to be written
        if metrics is None or metrics["eval_return"].shape[1] < g.cfg.num_evals:
            done_all = False
            break
        part_metrics.append(metrics)
        part_diverged.append(diverged)
        del state
    if done_all:
        with lock:
            outputs.record(g, _merge_parts(part_metrics), np.concatenate(part_diverged), g.cfg.num_evals,
                           done=True, seconds=seconds, chunk_seconds=chunk_seconds)
    return done_all


def _merge_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Parts of a group concatenated on the run axis (a part still running may have fewer evaluations)."""
    if len(parts) == 1:
        return parts[0]
    evals = min(p["eval_return"].shape[1] for p in parts)
    return {k: np.concatenate([p[k][:, :evals] for p in parts]) for k in parts[0]}


# --- the sweep --------------------------------------------------------------------------------
def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def prepare_out(out: Path, plan: Plan, resume: bool, overwrite: bool) -> None:
    """Refuse what would lose or mix results, before any work (process 0 decides; the others wait)."""
    if jax.process_index() == 0:
        _prepare_out(out, plan, resume, overwrite)
    _barrier("jaxdyna-prepare-out")


def _prepare_out(out: Path, plan: Plan, resume: bool, overwrite: bool) -> None:
    status = out / STATUS_FILE
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    if resume:
        if not status.is_file():
            raise ConfigError(f"--resume: {out} holds no sweep to resume (no {STATUS_FILE})")
        old = json.loads(status.read_text())
        if old.get("digest") != plan.digest:
            raise ConfigError(f"--resume: the sweep file or its configs changed since {out} was started "
                              f"(digest {old.get('digest')} != {plan.digest}); rerun with --overwrite or a new --out")
        return
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            what = "a finished sweep" if status.is_file() else "files"
            raise ConfigError(f"--out: {out} already holds {what}; pass --resume to continue it, --overwrite to "
                              "replace it, or choose another --out")
        for name in ("groups", "checkpoints", "tb", "report"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (STATUS_FILE, "summary.json", "metrics.csv", "sweep.yaml"):
            (out / name).unlink(missing_ok=True)
    check_writable_dir(out)


def _progress(bar) -> Callable[[int, int], None]:
    """Advance the bar by finished run-evaluations; show the env steps the latest chunk reached."""
    def update(evals: int, env_steps: int) -> None:
        if bar is not None:
            bar.set_postfix_str(f"env_steps={env_steps:,}", refresh=False)
            bar.update(evals)
    return update


def _run_groups(plan: Plan, pending: list[Group], meshes: list[Mesh], outputs: Outputs, batching: str,
                resume: bool, stop: Interrupt, bar, loggers: list, deadline: float | None = None) -> bool:
    """Every pending group, one after another on one device block or side by side on several
    (one thread per block takes the next group; XLA runs each block's program on its own cores).
    True when all finished; an error in one group stops the others after their chunk and is raised."""
    lock, queue, running, failed = threading.Lock(), list(pending), {}, []
    finished: dict[str, bool] = {}

    def describe_running():
        if bar is not None:
            names = ", ".join(running.values())
            bar.set_description(f"sweep: {len(finished)}/{len(pending)} groups done" + (f", running {names}" if names else ""))

    def work(mesh: Mesh):
        while not stop.requested and not failed:
            with lock:
                if not queue:
                    return
                g = queue.pop(0)
                running[g.name] = f"{g.name} ({g.cfg.algo})"
                describe_running()
            try:
                ok = run_group(plan, g, outputs, batching, resume, stop, _progress(bar), loggers, mesh, lock, deadline)
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
                failed.append(e)
                stop.requested = True
                return
            with lock:
                finished[g.name] = ok
                running.pop(g.name)
                describe_running()
            if not ok:
                return

    if len(meshes) == 1:
        work(meshes[0])
    else:
        threads = [threading.Thread(target=work, args=(m,), daemon=True) for m in meshes]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():            # a timed join lets the main thread take Ctrl-C
                t.join(0.2)
    if failed:
        raise failed[0]
    return len(finished) == len(pending) and all(finished.values())


def run_plan(plan: Plan, out: Path, sweep_text: str, command: str, batching: str = "auto",
             resume: bool = False, show_progress: bool = True, loggers: list = (),
             time_limit: float | None = None) -> Outcome:
    """Run every group of `plan` into `out`; stops cleanly (incomplete) on Ctrl-C, or before the first
    chunk that would end more than `time_limit` seconds after the call (a job's wall-clock limit);
    either way `resume=True` continues it. `loggers` (`jaxdyna.loggers`) get every chunk's metrics
    on the host."""
    writer = jax.process_index() == 0
    outputs = Outputs(plan, out, command, writer)
    outputs.start(sweep_text, resume)
    total = sum(g.runs * g.cfg.num_evals for g in plan.groups)
    done0 = sum(g.runs * outputs.status["groups"][g.name].get("evals_done", 0) for g in plan.groups)
    bar = None
    if show_progress and writer:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=done0, unit="eval", file=sys.stderr, dynamic_ncols=True, desc="sweep")
    pending = [g for g in plan.groups if not outputs.group_done(g)]
    meshes = worker_meshes(pending, plan.side_by_side)
    t0 = time.perf_counter()
    deadline = None if time_limit is None else t0 + time_limit
    with Interrupt() as stop:
        complete = _run_groups(plan, pending, meshes, outputs, batching, resume, stop, bar, list(loggers), deadline)
    outputs.status["wall_seconds"] = round(outputs.status.get("wall_seconds", 0.0) + time.perf_counter() - t0, 2)
    if bar is not None:
        bar.close()
    for logger in loggers:
        logger.close()
    summary = outputs.finish(complete)
    return Outcome(complete=complete, summary=summary, timed_out=stop.timed_out and not complete)
