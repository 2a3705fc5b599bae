"""Atomic writes and provenance."""

import json

import numpy as np
import pytest

from jaxdyna import io


def test_write_json_round_trips_arrays_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "sub" / "r.json"
    io.write_json(path, {"a": np.arange(3), "b": 1.5})
    assert json.loads(path.read_text()) == {"a": [0, 1, 2], "b": 1.5}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.json"
    io.write_json(path, {"old": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_git_revision_can_be_named_by_the_environment(monkeypatch):
    monkeypatch.delenv("JAXDYNA_GIT_REVISION", raising=False)
    from_git = io.git_revision()
    assert from_git == "unknown" or len(from_git.split("-")[0]) == 12
    monkeypatch.setenv("JAXDYNA_GIT_REVISION", "0123456789ab")
    assert io.git_revision() == "0123456789ab"
    prov = io.provenance("cmd")
    assert prov["git_revision"] == "0123456789ab" and prov["command"] == "cmd"
    assert {"jax", "python"} <= set(prov["versions"])


def test_provenance_names_the_compiler_settings_a_figure_was_made_under(monkeypatch):
    for k in io.COMPILER_SETTINGS:
        monkeypatch.delenv(k, raising=False)
    plain = io.provenance("cmd")
    assert "settings" not in plain and io.describe_settings(plain) == ""
    monkeypatch.setenv("XLA_FLAGS", " --xla_cpu_multi_thread_eigen=false ")
    monkeypatch.setenv("JAX_ENABLE_X64", "1")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/tmp/cache")     # bookkeeping, not a compiler setting
    prov = io.provenance("cmd")
    assert prov["settings"] == {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false", "JAX_ENABLE_X64": "1"}
    assert io.describe_settings(prov) == "; settings: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false, JAX_ENABLE_X64=1"


def test_cpu_device_description_names_the_cpu_model(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\nflags\t: fpu\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(cpuinfo if p == "/proc/cpuinfo" else p, *a, **k))
    assert io.cpu_model() == "AMD EPYC 9B14"
    desc = io.device_description()
    assert " cpu (cpu), " in desc and desc.endswith(" (AMD EPYC 9B14)")
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: (_ for _ in ()).throw(OSError("no such file")))
    assert io.cpu_model() is None
