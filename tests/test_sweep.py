"""`jaxdyna sweep`: plans, sharding, multi-process, kill / resume, Ctrl-C, divergence, bad input.

Every sweep here is the same tiny SAC program (two seeds, four evaluations in chunks of two), so
the persistent compilation cache (set for the test session in conftest.py) compiles it once.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from conftest import ROOT, run_cli
from jaxdyna.config import ConfigError
from jaxdyna.sweepfile import load_sweep, plan_sweep

TINY = {"env": "inverted_pendulum", "total_steps": 1000, "warmup_steps": 200, "eval_every": 200,
        "eval_episodes": 2, "episode_length": 100, "batch_size": 32, "actor_hidden": [16, 16],
        "critic_hidden": [16, 16], "buffer_size": 2000}


def _sweep(tmp_path: Path, name="s.yaml", **over) -> Path:
    data = {"configs": ["sac"], "seeds": [0, 1], "set": dict(TINY), "chunk_evals": 2, **over}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _returns(out: Path, **where) -> np.ndarray:
    rows = [r for r in _rows(out) if all(r[k] == v for k, v in where.items())]
    return np.array([[float(r["eval_return"]), float(r["critic_loss"])] for r in rows])


def _popen(*args, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "jaxdyna", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_for(predicate, proc, timeout=300):
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.returncode}\n{proc.stderr.read()[-3000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep, one process, one device."""
    tmp = tmp_path_factory.mktemp("ref")
    res = run_cli("sweep", str(_sweep(tmp)), "--out", str(tmp / "out"), "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp / "out"


def test_plan_groups_by_static_config(tmp_path):
    data = {"configs": ["sac", "mbpo"], "seeds": 3, "set": {"total_steps": 3000},
            "grid": {"real_ratio": [0.05, 0.5], "model_retain": [1, 2]}}
    plan = plan_sweep(data)
    # sac: model_retain is static but unused by sac... still a Config field: 2 groups; mbpo: 2 groups
    assert [(g.cfg.algo, g.cfg.model_retain, len(g.settings), g.runs) for g in plan.groups] == \
        [("sac", 1, 2, 6), ("sac", 2, 2, 6), ("mbpo", 1, 2, 6), ("mbpo", 2, 2, 6)]
    assert plan.swept_keys == ["real_ratio", "model_retain"] and plan.runs == 24
    assert [float(s.hp.real_ratio) for s in plan.groups[2].settings] == [0.05, 0.5]


@pytest.mark.parametrize("num_evals, chunk", [(1, 1), (8, 1), (10, 1), (12, 2), (20, 2), (125, 25), (22, 11),
                                               (19, 1), (11, 1), (2 * 97, 97)])
def test_default_chunks_are_at_most_ten_and_never_the_whole_of_a_long_run(num_evals, chunk):
    from jaxdyna.sweepfile import default_chunk_evals
    assert default_chunk_evals(num_evals) == chunk


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweep_files_plan(path):
    if path.stem.startswith("dmc_"):
        pytest.importorskip("mujoco_playground", reason="DMC sweeps need the playground extra")
    plan = plan_sweep(load_sweep(path), base=path.parent)
    assert plan.runs > 0 and all(g.runs == len(g.settings) * len(g.seeds) for g in plan.groups)


def test_sweep_outputs_and_solo_run(reference):
    """Long-form metrics with the swept keys; a (setting, seed) of the sweep equals that seed run alone."""
    from jaxdyna.config import resolve
    from jaxdyna.sweep import run_sweep

    rows = _rows(reference)
    assert list(rows[0])[:7] == ["config", "algo", "env", "seed", "env_steps", "eval_return", "actor_loss"]
    assert list(rows[0])[-1] == "diverged" and len(rows) == 2 * 4
    status = json.loads((reference / "sweep.json").read_text())
    assert status["complete"] is True and status["groups"]["g00"]["evals_done"] == 4
    assert (reference / "report" / "report.md").is_file() and (reference / "summary.json").is_file()
    assert oct(os.stat(reference / "metrics.csv").st_mode & 0o777) != "0o600"      # normal, readable files
    cfg, hp = resolve({"algo": "sac", **TINY})
    solo = run_sweep(cfg, [hp], [1], batching="map").metrics
    np.testing.assert_array_equal(_returns(reference, seed="1")[:, 0], solo["eval_return"][0])
    np.testing.assert_array_equal(_returns(reference, seed="1")[:, 1], solo["critic_loss"][0])


def test_four_devices_give_the_one_device_results(reference, tmp_path):
    """Two runs padded to four forced CPU devices (shard_map over a 'runs' mesh)."""
    res = run_cli("sweep", str(_sweep(tmp_path)), "--out", str(tmp_path / "out"), "--quiet",
                  env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "4 device(s)" in res.stderr
    np.testing.assert_array_equal(_returns(tmp_path / "out"), _returns(reference))


@pytest.mark.slow
def test_groups_side_by_side_give_the_one_device_results(reference, tmp_path):
    """Two groups (a static grid) on two CPU devices run side by side, one device each, with each
    group's one-device numbers."""
    from jaxdyna.config import resolve
    from jaxdyna.sweep import run_sweep

    sweep = _sweep(tmp_path, grid={"batch_size": [32, 16]})
    # with two cores the CLI makes the two devices itself; on one core, force them
    forced = {} if len(os.sched_getaffinity(0)) >= 2 else {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    res = run_cli("sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet", env=forced)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "up to 2 groups at a time, side by side on 1 device(s) each" in res.stderr
    np.testing.assert_array_equal(_returns(tmp_path / "out", batch_size="32"), _returns(reference))
    cfg, hp = resolve({"algo": "sac", **TINY, "batch_size": 16})
    solo = run_sweep(cfg, [hp], [1], batching="map").metrics
    np.testing.assert_array_equal(_returns(tmp_path / "out", batch_size="16", seed="1")[:, 0], solo["eval_return"][0])
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["wall_seconds"] > 0


def test_checkpoints_of_groups_side_by_side_are_all_written(tmp_path):
    """Side-by-side groups save from their own threads, each with its own checkpoint manager. Orbax
    keys a save's background steps by one process-wide operation id, so saves in flight at once in
    two managers used to fail (missing files in the temporary directory) or hang on a signal; the
    runner keeps one save in flight per process. Every save of both threads lands, with its data."""
    import threading

    import orbax.checkpoint as ocp

    from jaxdyna.runner import _checkpointer, _save

    errors, last = [], {0: 4, 1: 20}        # thread 0 closes its manager while thread 1 still saves

    def work(i):
        try:
            ckpt = _checkpointer(tmp_path / f"g{i}")
            for step in range(1, last[i] + 1):
                _save(ckpt, step, {"x": jax.numpy.arange(500.0) * step + i}, {"chunk": step})
            ckpt.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
    for i in (0, 1):
        ckpt = _checkpointer(tmp_path / f"g{i}")
        assert ckpt.latest_step() == last[i]
        got = ckpt.restore(last[i], args=ocp.args.Composite(state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
        np.testing.assert_array_equal(got["state"]["x"], np.arange(500.0) * last[i] + i)
        assert got["meta"] == {"chunk": last[i]}
        ckpt.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_one_process_results(reference, tmp_path):
    """jax.distributed over two local CPU processes (gloo): one global mesh, process 0 writes."""
    sweep, port = _sweep(tmp_path), _free_port()
    procs = [_popen("sweep", str(sweep), "--out", str(tmp_path / "out"), "--quiet", "--coordinator",
                    f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i),
                    "--time-limit", "1h")     # the processes agree on process 0's time-limit decision
             for i in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert "2 device(s)" in errs[0] and "2 process(es)" in errs[0]
    np.testing.assert_array_equal(_returns(tmp_path / "out"), _returns(reference))


@pytest.mark.slow
def test_kill_then_sigint_then_resume_equals_uninterrupted(reference, tmp_path):
    sweep, out = _sweep(tmp_path), tmp_path / "out"
    status = out / "sweep.json"

    def evals_done():
        try:
            return json.loads(status.read_text())["groups"]["g00"]["evals_done"]
        except (OSError, ValueError, KeyError):
            return 0

    # 1. SIGKILL right after the first chunk was recorded
    p = _popen("sweep", str(sweep), "--out", str(out), "--quiet")
    _wait_for(lambda: evals_done() >= 2, p)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    n = evals_done()            # 2, or 4 when the second (tiny) chunk finished before the kill landed
    assert n >= 2 and len(_rows(out)) == 2 * n           # what the status counts is on disk
    # 2. a fresh start into it is refused; resume, then Ctrl-C: stops after the chunk in flight
    res = run_cli("sweep", str(sweep), "--out", str(out))
    assert res.returncode == 2 and "--resume" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    before = status.stat().st_mtime_ns
    p = _popen("sweep", str(sweep), "--out", str(out), "--quiet", "--resume")
    _wait_for(lambda: status.stat().st_mtime_ns != before, p)      # it has started the sweep loop
    try:
        os.killpg(p.pid, signal.SIGINT)
    except ProcessLookupError:                          # it had already finished
        pass
    _, err = p.communicate(timeout=600)
    assert p.returncode in (0, 130), err[-2000:]
    assert "Traceback" not in err and evals_done() >= 2            # nothing finished was lost
    if p.returncode == 130:                             # it stopped before finishing: marked incomplete
        assert json.loads(status.read_text())["complete"] is False and "--resume" in err
    # 3. resume to the end: identical to the uninterrupted sweep
    res = run_cli("sweep", str(sweep), "--out", str(out), "--quiet", "--resume")
    assert res.returncode == 0, res.stderr[-3000:]
    final = json.loads(status.read_text())
    assert final["complete"] is True
    # run seconds count the chunks whose results were kept, each once: a chunk that ran again after a
    # kill (its checkpoint had not landed) replaces its first timing, so the total need not grow
    g = final["groups"]["g00"]
    assert len(g["chunk_seconds"]) == 2 and all(t > 0 for t in g["chunk_seconds"])
    assert g["run_seconds"] == pytest.approx(sum(g["chunk_seconds"]), abs=0.01)
    np.testing.assert_array_equal(_returns(out), _returns(reference))


@pytest.mark.slow
def test_time_limit_stops_resumable_and_records_chunk_seconds(reference, tmp_path):
    sweep, out = _sweep(tmp_path), tmp_path / "out"
    # a limit that passes while the program builds: no chunk starts, exit 75, resumable
    res = run_cli("sweep", str(sweep), "--out", str(out), "--quiet", "--time-limit", "0.01s")
    assert res.returncode == 75, res.stderr[-3000:]
    assert "time limit" in res.stderr and "--resume" in res.stderr and "Traceback" not in res.stderr
    status = json.loads((out / "sweep.json").read_text())
    assert status["complete"] is False and status["groups"]["g00"]["evals_done"] == 0
    # a limit far off: runs to the end; one wall time per chunk is recorded
    res = run_cli("sweep", str(sweep), "--out", str(out), "--quiet", "--resume", "--time-limit", "1h")
    assert res.returncode == 0, res.stderr[-3000:]
    group = json.loads((out / "sweep.json").read_text())["groups"]["g00"]
    assert len(group["chunk_seconds"]) == 2 and all(t > 0 for t in group["chunk_seconds"])
    assert sum(group["chunk_seconds"]) == pytest.approx(group["run_seconds"], abs=0.05)
    np.testing.assert_array_equal(_returns(out), _returns(reference))


def test_resume_refuses_a_changed_sweep(reference, tmp_path):
    changed = _sweep(tmp_path, seeds=[0, 1, 2])
    res = run_cli("sweep", str(changed), "--out", str(reference), "--resume")
    assert res.returncode == 2 and "changed" in res.stderr and "Traceback" not in res.stderr


def test_divergence_is_flagged_and_leaves_the_other_runs_alone(reference, tmp_path):
    """One seed, two settings: the two runs of the reference's shapes, so its programs are reused."""
    out = tmp_path / "out"
    res = run_cli("sweep", str(_sweep(tmp_path, seeds=[1], grid={"critic_lr": [3.0e-4, 1.0e30]})), "--out", str(out),
                  "--quiet")
    assert res.returncode == 0, res.stderr[-3000:]
    rows = _rows(out)
    bad = {r["diverged"] for r in rows if float(r["critic_lr"]) > 1}
    assert bad == {"1"}
    assert {r["diverged"] for r in rows if float(r["critic_lr"]) < 1} == {"0"}
    np.testing.assert_array_equal(_returns(out, critic_lr="0.0003"), _returns(reference, seed="1"))
    summary = json.loads((out / "summary.json").read_text())
    assert [r["diverged"] for r in summary["runs"]] == [False, True], summary["runs"]


@pytest.mark.parametrize("text, field", [
    ("configs: [sac]\nseeds: 2\nset: {totl_steps: 10}\n", "total_steps"),            # suggests the key
    ("configs: [sac]\ngrid: {actor_lr: []}\n", "grid: actor_lr"),
    ("configs: [sac]\ngrid: {actor_lr: 0.1}\n", "grid: actor_lr"),
    ("configs: [sac]\nseeds: 0\n", "seeds"),
    ("configs: [sac]\nseeds: -3\n", "seeds"),
    ("configs: [sac]\ngrid: {actor_lr: [fast]}\n", "actor_lr"),
    ("configs: [nosuch/env]\n", "configs"),
    ("", "empty"),
    ("configs: [sac\n", "not valid YAML"),
    ("configz: [sac]\n", "configs"),
])
def test_bad_sweep_files_get_one_line_errors(tmp_path, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field.split(":")[0]):
        plan_sweep(load_sweep(path), base=tmp_path)
    res = run_cli("sweep", str(path), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and field in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


def test_inline_configs_in_a_sweep_file():
    plan = plan_sweep({"configs": [{"algo": "sac", "name": "small", **TINY}, {"algo": "sac", **TINY, "actor_lr": 1e-3}],
                       "seeds": 2})
    assert [s.label for g in plan.groups for s in g.settings] == ["small", "sac"] and len(plan.groups) == 1
    plan = plan_sweep({"configs": [{"config": "mbpo/inverted_pendulum", "name": "small", "model_hidden": [8, 8],
                                     "model_weight_decay": 1e-4}]})
    cfg = plan.groups[0].cfg
    assert plan.groups[0].settings[0].label == "small" and cfg.model_hidden == (8, 8) and cfg.ensemble_size == 7
    with pytest.raises(ConfigError, match="actor_hiden.*actor_hidden"):
        plan_sweep({"configs": [{"algo": "sac", "actor_hiden": [8]}]})
    with pytest.raises(ConfigError, match="algo"):
        plan_sweep({"configs": [{"env": "hopper"}]})


@pytest.mark.slow
def test_compare_is_a_sweep_with_a_report(tmp_path):
    """`jaxdyna compare A.yaml B.yaml`: one sweep (same static config -> one program: with one seed
    each, the two runs of the reference's programs), then its report."""
    a, b = tmp_path / "fast.yaml", tmp_path / "slow.yaml"
    a.write_text(yaml.safe_dump({"algo": "sac", **TINY, "actor_lr": 1e-3}))
    b.write_text(yaml.safe_dump({"algo": "sac", **TINY, "actor_lr": 1e-4}))
    out = tmp_path / "cmp"
    res = run_cli("compare", str(a), str(b), "--seeds", "1", "--out", str(out), "--quiet", "--no-tensorboard")
    assert res.returncode == 0, res.stderr[-3000:]
    assert {r["config"] for r in _rows(out)} == {str(a)[:-5], str(b)[:-5]} and len(_rows(out)) == 2 * 1 * 4
    assert json.loads((out / "sweep.json").read_text())["complete"] is True
    assert (out / "report" / "report.md").is_file() and (out / "report" / "curves_inverted_pendulum.png").is_file()
    finals = [l for l in res.stderr.splitlines() if "final eval return mean" in l]
    assert len(finals) == 2, res.stderr[-2000:]
    res = run_cli("compare", str(a), "--out", str(out), "--quiet")
    assert res.returncode == 2 and "--overwrite" in res.stderr


class _FakeWandb:
    """Records what the W&B logger sends (no network, no wandb package needed)."""

    def __init__(self):
        self.inits, self.logged, self.finished = [], {}, []

    def init(self, **kw):
        self.inits.append(kw)
        fake, rid = self, kw["id"]

        class Run:
            def log(self, values, step):
                fake.logged.setdefault(rid, []).append((step, values))

            def finish(self):
                fake.finished.append(rid)
        return Run()


def test_wandb_logger_gets_every_run_and_evaluation(tmp_path, monkeypatch):
    from jaxdyna.loggers import make_loggers
    from jaxdyna.runner import run_plan

    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    path = _sweep(tmp_path)
    plan = plan_sweep(load_sweep(path), base=tmp_path)
    out = tmp_path / "out"
    outcome = run_plan(plan, out, path.read_text(), "test", batching="map", show_progress=False,
                       loggers=make_loggers(out, plan, tensorboard=False, wandb_project="proj"))
    assert outcome.complete
    assert [kw["name"] for kw in fake.inits] == ["sac/seed0", "sac/seed1"]
    assert all(kw["project"] == "proj" and kw["resume"] == "allow" for kw in fake.inits)
    assert len({kw["id"] for kw in fake.inits}) == 2 and sorted(fake.finished) == sorted(kw["id"] for kw in fake.inits)
    for kw, seed in zip(fake.inits, ("0", "1")):
        logged = [(step, v["eval_return"]) for step, v in fake.logged[kw["id"]]]
        expected = [(int(r["env_steps"]), float(r["eval_return"])) for r in _rows(out) if r["seed"] == seed]
        np.testing.assert_allclose(np.array(logged), np.array(expected), rtol=1e-6)


def test_wandb_missing_is_a_one_line_error(tmp_path):
    try:
        import wandb  # noqa: F401
        pytest.skip("wandb is installed here")
    except ImportError:
        pass
    res = run_cli("sweep", str(_sweep(tmp_path)), "--out", str(tmp_path / "out"), "--wandb", "proj")
    assert res.returncode == 2 and "--wandb" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_checkpoint_round_trip_keeps_zero_size_arrays_and_absent_parts(tmp_path):
    """orbax cannot save zero-size arrays (MJX's `Data` has some): they are left out and put back,
    and absent parts of the state (None, e.g. SAC's model) stay absent."""
    import orbax.checkpoint as ocp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from jaxdyna.runner import _checkpointer, _drop_empty, _restore_empty, _save

    mesh = Mesh(np.array(jax.devices()[:1]), ("runs",))
    put = lambda x: jax.device_put(x, NamedSharding(mesh, PartitionSpec("runs")))
    state = {"w": put(np.arange(6.0).reshape(2, 3)), "act": put(np.zeros((2, 0))), "model": None,
             "n": {"b": put(np.ones(2, np.int32))}}
    ckpt = _checkpointer(tmp_path / "c")
    _save(ckpt, 1, state, {})
    ckpt.wait_until_finished()
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    back = ckpt.restore(1, args=ocp.args.Composite(state=ocp.args.StandardRestore(_drop_empty(abstract)),
                                                   meta=ocp.args.JsonRestore()))["state"]
    back = _restore_empty(abstract, back)
    assert back["model"] is None and back["act"].shape == (2, 0)
    np.testing.assert_array_equal(back["w"], state["w"])
    np.testing.assert_array_equal(back["n"]["b"], state["n"]["b"])


class _InterruptAfterFirstChunk:
    """A logger that sends this process SIGINT (a user's Ctrl-C) when the first chunk is logged."""

    def log(self, group, rows, m):
        os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        pass


def test_a_skipped_checkpoint_is_saved_when_the_run_stops(reference, tmp_path, monkeypatch):
    """While the previous checkpoint is still being written, a chunk's save is skipped; stopping
    right after that chunk saves it, so the resumed run continues from it and equals the
    uninterrupted one."""
    import orbax.checkpoint as ocp

    from jaxdyna.runner import prepare_out, run_plan

    path, out = _sweep(tmp_path), tmp_path / "out"
    plan = plan_sweep(load_sweep(path), base=path.parent)
    monkeypatch.setattr(ocp.CheckpointManager, "is_saving_in_progress", lambda self: True)
    prepare_out(out, plan, resume=False, overwrite=False)
    outcome = run_plan(plan, out, path.read_text(), "test", show_progress=False,
                       loggers=[_InterruptAfterFirstChunk()])
    assert not outcome.complete
    ckpt_dir = out / "checkpoints" / "g00-p0"
    steps = sorted(int(d.name) for d in ckpt_dir.iterdir() if d.name.isdigit())
    assert steps == [1] and not [d for d in ckpt_dir.iterdir() if "tmp" in d.name]
    monkeypatch.undo()
    prepare_out(out, plan, resume=True, overwrite=False)
    assert run_plan(plan, out, path.read_text(), "test", resume=True, show_progress=False).complete
    np.testing.assert_array_equal(_returns(out), _returns(reference))


class _InterruptAfterSecondChunk(_InterruptAfterFirstChunk):
    def __init__(self):
        self.chunks = 0

    def log(self, group, rows, m):
        self.chunks += 1
        if self.chunks == 2:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_resume_behind_the_status_counts_each_kept_chunk_once(tmp_path, monkeypatch):
    """A run whose last checkpoint is behind its status (the save of chunk 2 never landed, as when
    the process is killed while writing it) resumes from chunk 1 and times chunk 2 again: the
    status keeps one wall time per chunk whose results it keeps, and the run seconds are their sum."""
    from jaxdyna import runner
    from jaxdyna.runner import prepare_out, run_plan

    path, out = _sweep(tmp_path, chunk_evals=1), tmp_path / "out"
    plan = plan_sweep(load_sweep(path), base=path.parent)
    save = runner._save
    monkeypatch.setattr(runner, "_save", lambda ckpt, step, state, meta: None if step == 2 else save(ckpt, step, state, meta))
    prepare_out(out, plan, resume=False, overwrite=False)
    assert not run_plan(plan, out, path.read_text(), "test", show_progress=False,
                        loggers=[_InterruptAfterSecondChunk()]).complete
    group = json.loads((out / "sweep.json").read_text())["groups"]["g00"]
    assert group["evals_done"] == 2 and len(group["chunk_seconds"]) == 2
    assert runner._checkpointer(out / "checkpoints" / "g00-p0").latest_step() == 1
    monkeypatch.undo()
    prepare_out(out, plan, resume=True, overwrite=False)
    assert run_plan(plan, out, path.read_text(), "test", resume=True, show_progress=False).complete
    group = json.loads((out / "sweep.json").read_text())["groups"]["g00"]
    assert len(group["chunk_seconds"]) == 4 and all(t > 0 for t in group["chunk_seconds"])
    assert sum(group["chunk_seconds"]) == pytest.approx(group["run_seconds"], abs=0.05)
    assert len(_rows(out)) == 2 * 4


def test_a_save_cut_short_leaves_the_previous_checkpoint(tmp_path):
    """Checkpoints are written in the background: a process that dies while writing one leaves
    the previous checkpoint to resume from, and no partial directory behind."""
    script = f"""
import os, jax, numpy as np
from jaxdyna.runner import _checkpointer, _save
ckpt = _checkpointer(__import__("pathlib").Path({str(tmp_path / "c")!r}))
_save(ckpt, 1, {{"w": jax.numpy.ones(4)}}, {{"chunk": 1}})
ckpt.wait_until_finished()
_save(ckpt, 2, {{"w": jax.numpy.asarray(np.random.default_rng(0).standard_normal(50_000_000, dtype=np.float32))}},
      {{"chunk": 2}})
os._exit(3)                     # killed while the second save is being written
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    import orbax.checkpoint as ocp

    from jaxdyna.runner import _checkpointer

    ckpt = _checkpointer(tmp_path / "c")
    assert ckpt.latest_step() == 1
    back = ckpt.restore(1, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    assert back["meta"] == {"chunk": 1}
    ckpt.close()
    t0 = time.time()            # the partial directory is removed in the background
    while sorted(d.name for d in (tmp_path / "c").iterdir()) != ["1"] and time.time() - t0 < 60:
        time.sleep(0.1)
    assert sorted(d.name for d in (tmp_path / "c").iterdir()) == ["1"]
