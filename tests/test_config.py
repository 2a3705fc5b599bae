import math

import pytest
import yaml

from jaxdyna.config import ConfigError, load_yaml, parse_set, resolve, to_dict

ROOT_CONFIGS = __import__("pathlib").Path(__file__).resolve().parent.parent / "configs"


def test_defaults_and_overrides():
    cfg, hp = resolve({"env": "hopper", "actor_lr": "1e-3", "actor_hidden": "64,64"})
    assert cfg.env == "hopper" and cfg.actor_hidden == (64, 64)
    assert hp.actor_lr == pytest.approx(1e-3)
    assert cfg.batch_size == 256 and hp.gamma == 0.99 and hp.tau == 5e-3 and cfg.critic_hidden == (256, 256)
    assert math.isnan(hp.target_entropy)


def test_round_trip():
    cfg, hp = resolve({"env": "ant", "target_entropy": -4})
    cfg2, hp2 = resolve(yaml.safe_load(yaml.safe_dump(to_dict(cfg, hp))))
    assert cfg2 == cfg and float(hp2.target_entropy) == -4.0


@pytest.mark.parametrize("values, field", [
    ({"env": "cartpole"}, "env"),
    ({"backend": "bullet"}, "backend"),
    ({"algo": "ppo"}, "algo"),
    ({"learning_rate": 1}, "unknown key"),
    ({"total_steps": -5}, "total_steps"),
    ({"total_steps": "many"}, "total_steps"),
    ({"batch_size": 512, "buffer_size": 100}, "batch_size"),
    ({"gamma": 1.5}, "gamma"),
    ({"actor_hidden": [64, -1]}, "actor_hidden"),
    ({"algo": "mbpo", "num_elites": 9}, "num_elites"),
    ({"algo": "mbpo", "rollout_max_len": 5}, "rollout_max_len"),
    ({"policy_std": "gaussian"}, "policy_std: unknown .gaussian.; allowed: log_std, softplus"),
    ({"algo": "mbpo", "model_matmul": "float16"}, "model_matmul: unknown .float16.; allowed: float32, bfloat16"),
])
def test_bad_values_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field) as e:
        resolve(values)
    assert "\n" not in str(e.value)


def test_parse_set_and_malformed_yaml(tmp_path):
    assert parse_set(["a=1", "b=[1, 2]", "c=x"]) == {"a": 1, "b": [1, 2], "c": "x"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")


def test_shipped_configs_resolve():
    """Every shipped config resolves (the Playground ones need the playground extra, which CI installs)."""
    import importlib.util

    files = sorted(f for f in ROOT_CONFIGS.glob("*/*.yaml") if f.parent.name != "sweeps")
    assert files, "configs/ is empty"
    if importlib.util.find_spec("mujoco_playground") is None:
        files = [f for f in files if not f.stem.startswith("dmc_")]
    for f in files:
        resolve(load_yaml(f))
