"""`partial-oracle`: an oracle that is not told some dynamics parameters (`hide`), which
prices each parameter (docs/algorithms.md, "What each parameter is worth")."""

import pytest
import torch

from metabot.algos.baselines import privileged_indices
from metabot.algos.runs import load_agent
from metabot.algos.trainer import get_distribution, train
from metabot.errors import ConfigError

SMALL = {"num_envs": 4, "update_epochs": 1, "num_minibatches": 1, "hidden": [16, 16]}


@pytest.fixture(scope="module")
def arm2d():
    return get_distribution("arm2d-reach")


def test_names_resolve_to_feature_columns(arm2d):
    names = arm2d.oracle_names
    assert len(names) == arm2d.oracle_dim
    gains = privileged_indices(arm2d, ("servo_gain",))
    assert [names[i] for i in gains] == ["servo_gain[0]", "servo_gain[1]"]
    assert privileged_indices(arm2d, ("servo_gain[1]", "payload")) == sorted(
        [names.index("servo_gain[1]"), names.index("payload[0]")])
    with pytest.raises(ConfigError, match="'servo_gian' is not a dynamics parameter.*servo_gain"):
        privileged_indices(arm2d, ("servo_gian",))
    with pytest.raises(ConfigError, match="does not name its oracle features"):
        privileged_indices(get_distribution("toy-reach"), ("gain",))


def test_a_trained_blind_oracle_ignores_the_hidden_parameters_after_reload(tmp_path, arm2d):
    steps = 4 * 2 * arm2d.spec.episode_steps  # two PPO iterations
    run = train("partial-oracle", "arm2d-reach", tmp_path / "o", seed=0, steps=steps,
                overrides={**SMALL, "hide": ["servo_gain"]}, progress=False)
    agent, info = load_agent(run)
    assert info["config"]["hide"] == ["servo_gain"]
    gains = privileged_indices(arm2d, ("servo_gain",))
    obs = torch.randn(5, arm2d.obs_dim)
    priv = torch.rand(5, arm2d.oracle_dim) * 2 - 1
    other = priv.clone()
    other[:, gains] = torch.rand(5, len(gains)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(agent.actor_mean(obs, priv), agent.actor_mean(obs, other))
        assert torch.equal(agent.value(obs, priv), agent.value(obs, other))
        seen = priv.clone()
        seen[:, privileged_indices(arm2d, ("payload",))] += 0.5
        assert not torch.equal(agent.actor_mean(obs, priv), agent.actor_mean(obs, seen))


@pytest.mark.parametrize("algo,overrides,error", [
    ("oracle", {"hide": ["payload"]}, "unknown config key 'hide'"),
    ("dr", {"hide": ["payload"]}, "unknown config key 'hide'"),
    ("partial-oracle", {}, "'hide' must name at least one"),
])
def test_hide_belongs_to_partial_oracle_and_must_hide_something(tmp_path, algo, overrides, error):
    with pytest.raises(ConfigError, match=error):
        train(algo, "arm2d-reach", tmp_path / "d", steps=100, overrides=overrides,
              progress=False)
