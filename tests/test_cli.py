"""The real `jaxdyna` entry point: bad input gives one line and exit 2; a tiny run writes everything."""

import csv
import json

import pytest

from conftest import run_cli


@pytest.mark.parametrize("args, field", [
    (["run", "--set", "env=cartpole"], "env"),
    (["run", "--set", "env=playground/NoSuchTask"], "env"),
    (["run", "--set", "backend=bullet"], "backend"),
    (["run", "--set", "algorithm=sac"], "unknown key"),
    (["run", "--set", "total_steps=-100"], "total_steps"),
    (["run", "--set", "total_steps=abc"], "total_steps"),
    (["run", "--set", "batch_size=512", "--set", "buffer_size=100"], "batch_size"),
    (["run", "--set", "algo=ppo"], "algo"),
    (["run", "--seeds", "0"], "--seeds"),
    (["run", "--seeds", "x"], "--seeds"),
    (["run", "missing.yaml"], "no such file"),
    (["bogus"], "invalid choice"),
    (["compare", "--set", "env=cartpole"], "env"),
    (["compare", "--seeds", "-1"], "--seeds"),
    (["run", "--batching", "threads"], "--batching"),
    (["run", "--time-limit", "0"], "--time-limit"),
    (["compare", "--time-limit", "soon"], "--time-limit"),
    (["sweep", "configs/sweeps/inverted_pendulum.yaml", "--time-limit", "-5m"], "--time-limit"),
])
def test_bad_input_one_line_exit_2(args, field, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("keep me")
    r = run_cli(*args, "--out", str(out)) if args[0] in ("run", "compare") else run_cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("jaxdyna")]
    assert len(lines) == 1 and field in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert (out / "summary.json").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["summary.json"]


@pytest.mark.parametrize("command", ["run", "compare", "sweep", "report", "render", "maze"])
def test_every_command_has_help(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0 and "usage: jaxdyna " + command in r.stdout, r.stderr


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: hopper\n  total_steps: [1,\n")
    r = run_cli("run", str(bad))
    assert r.returncode == 2 and "not valid YAML" in r.stderr and "Traceback" not in r.stderr
    notmap = tmp_path / "list.yaml"
    notmap.write_text("- 1\n- 2\n")
    r = run_cli("run", str(notmap))
    assert r.returncode == 2 and "mapping" in r.stderr


@pytest.mark.slow
def test_cli_end_to_end_writes_all_files(tmp_path, tiny):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("\n".join(f"{k}: {v}" for k, v in tiny.items())
                   + "\ntotal_steps: 600\nwarmup_steps: 200\neval_every: 200\nbuffer_size: 1000\n"
                   + "actor_hidden: [16]\ncritic_hidden: [16]\nbatch_size: 32\n")
    out = tmp_path / "run"
    r = run_cli("run", str(cfg), "--seeds", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    # known third-party noise is hidden (jaxdyna --verbose shows it)
    assert "not actively being maintained" not in r.stderr and "Failed to import" not in r.stdout + r.stderr
    assert {"config.yaml", "metrics.csv", "returns.png", "summary.json", "sweep.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "sweep.json").read_text())["complete"] is True
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 2 * 2
    assert {"seed", "env_steps", "eval_return", "critic_loss"} <= set(rows[0])
    assert [r["env_steps"] for r in rows if r["seed"] == "1"] == ["400", "600"]
    s = json.loads((out / "summary.json").read_text())
    assert len(s["runs"]) == 2 and {"final_return", "best_return"} <= set(s["runs"][0])
    for k in ("compile_seconds", "run_seconds", "env_steps_per_second", "device", "versions", "git_revision"):
        assert k in s
    assert s["versions"]["brax"] and (out / "returns.png").stat().st_size > 1000
    assert "eval/s" in r.stderr or "s/eval" in r.stderr     # the progress bar (evaluations done)
    # the same command again is refused (it would replace a finished run); --resume finds it complete
    again = run_cli("run", str(cfg), "--seeds", "2", "--out", str(out))
    assert again.returncode == 2 and "--overwrite" in again.stderr
    resumed = run_cli("run", str(cfg), "--seeds", "2", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # the final policy of seed 1, replayed in Brax's HTML viewer from the run's checkpoint
    shown = run_cli("render", str(out), "--seed", "1")
    assert shown.returncode == 0, shown.stderr
    page = out / "sac-seed1.html"
    assert page.stat().st_size > 1000 and "brax-viewer" in page.read_text()    # the system and states, gzipped inline
    assert "wrote" in shown.stderr and "return" in shown.stderr
    missing = run_cli("render", str(out), "--seed", "7")
    assert missing.returncode == 2 and "seed 0" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_drills_refused_before_any_work(tmp_path):
    """Each a one-line error and exit 2 before training: nothing written, nothing lost."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    finished = tmp_path / "finished"
    finished.mkdir()
    (finished / "summary.json").write_text("keep me")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (["run", str(empty)], "is empty"),
        (["run", "--out", str(finished)], "--overwrite"),
        (["run", "--out", "/proc/jaxdyna-cannot-write"], "cannot write"),
        (["run", "--set", "totl_steps=5"], "did you mean 'total_steps'"),
        (["maze", "dyna-maze", "--out", str(a_file)], "not a directory"),
    ]
    for args, text in cases:
        r = run_cli(*args)
        lines = [l for l in r.stderr.splitlines() if l.startswith("jaxdyna")]
        assert r.returncode == 2 and len(lines) == 1 and text in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert (finished / "summary.json").read_text() == "keep me" and a_file.read_text() == "x"
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("jaxdyna ")
