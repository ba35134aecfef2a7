"""The shipped agents are what the committed config builds, and load on the robot side."""

import json

import pytest

from metabot import runtime
from metabot.deploy import build_agents
from metabot.deploy.demo import AGENT_NAMES, shipped_agents


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_shipped_artifact_records_the_committed_config(name):
    body = build_agents.committed_config()[name]
    agent = runtime.load(shipped_agents()[name])  # verifies the artifact's own digest
    meta = agent.metadata
    assert meta["algorithm"] == body["algo"] == name
    assert meta["task"]["name"] == body["tasks"] == "arm6-reach"
    assert meta["training"]["config_digest"] == build_agents.config_digest(body)
    assert meta["training"]["seed"] == body["seed"]
    assert meta["training"]["finished"] is True


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_committed_config_is_complete_and_valid(tmp_path, name):
    """Training with the committed file resolves to the same digest (no default drift)."""
    from metabot.algos.trainer import resolve_config

    body = build_agents.committed_config()[name]
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(body))
    cfg = resolve_config(body["algo"], body["tasks"], body["seed"], None, path)
    assert cfg["digest"] == build_agents.config_digest(body)


def test_adaptation_kinds():
    kinds = {n: runtime.load(p).metadata["adaptation"]["kind"]
             for n, p in shipped_agents().items()}
    assert kinds == {"rma": "context", "dr": "none", "oracle": "none"}


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_shipped_artifact_was_trained_on_the_committed_spec(name):
    """A changed sim/arm6.toml needs rebuilt agents: the recorded ranges must still match."""
    from metabot import tasks

    dist = tasks.get("arm6-reach")
    agent = runtime.load(shipped_agents()[name])
    recorded = json.loads(json.dumps(agent.metadata["task"]["ranges"]))
    assert recorded == json.loads(json.dumps(dist.ranges())), "rebuild the shipped agents"
    if name == "oracle":
        assert agent.privileged_dim == dist.oracle_dim


def test_the_shipped_adaptive_agent_runs_the_shipped_oracles_policy():
    """rma's teacher_run is the oracle: every weight of the oracle's actor is in rma's graph
    (so a rebuilt oracle needs a rebuilt rma; the build orders them)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    def weights(path):
        model = onnx.load(str(path))
        return [numpy_helper.to_array(t) for t in model.graph.initializer]

    agents = shipped_agents()
    rma = weights(agents["rma"])
    oracle = [w for w in weights(agents["oracle"]) if w.ndim == 2]  # the actor's matrices
    assert oracle
    for w in oracle:
        assert any(r.shape == w.shape and np.array_equal(r, w) for r in rma)
    assert build_agents.teacher_of(build_agents.committed_config(), "rma") == "oracle"


def test_a_teacher_run_must_name_another_agent():
    cfg = build_agents.committed_config()
    bad = {**cfg, "rma": {**cfg["rma"], "params": {**cfg["rma"]["params"],
                                                    "teacher_run": "runs/oracle"}}}
    with pytest.raises(build_agents.ConfigError, match="must name another agent"):
        build_agents.teacher_of(bad, "rma")
    assert build_agents.teacher_of(cfg, "dr") is None
