"""The synchronous mock-physics evaluation: the demo's robots and goals, deterministic."""

import pytest

from metabot.deploy import mock_physics
from metabot.deploy.demo import shipped_agents


@pytest.fixture(scope="module")
def paths():
    return {k: str(v) for k, v in shipped_agents().items()}


def test_mock_physics_is_deterministic_and_scores_like_the_demo(paths):
    kw = dict(draws=2, goals=1, budgets=(0, 50), jobs=1)
    a = mock_physics.evaluate(paths, **kw)
    b = mock_physics.evaluate(paths, **kw)
    assert a["return"] == b["return"] and a["dr_return"] == b["dr_return"]
    assert set(a["return"]) == {"0", "50"} and a["goals_per_task"] == 1
    assert "mock robot's physics" in a["measured_on"]
    for name in ("dr", "oracle"):
        assert 0 < a["tip_error_mm"][name]["mean_mm"] < 500
    slower = mock_physics.evaluate(paths, **kw, link_delay_ms=15.0)
    assert slower["dr_return"] != a["dr_return"]  # the link delay reaches the servos


def test_demo_goal_zero_is_the_demo_goal():
    """Goal 0 of a robot uses the demo's one-goal seed: both tools measure the same episode."""
    from metabot.deploy.demo import _goal_seed, _what

    assert _goal_seed(0, "test", 3, _what(0, 0)) == _goal_seed(0, "test", 3, 0)
    assert _goal_seed(0, "test", 3, _what(1, 0)) != _goal_seed(0, "test", 3, 0)


def test_gap_by_latency_adds_up_to_the_split():
    def draw(latency, dr, oracle, rma):
        return {"hidden": {"latency": [latency]},
                "return": {"dr": dr, "oracle": oracle, "rma k=200": rma}}

    draws = [draw(0.0, -50.0, -40.0, -42.0), draw(4.0, -90.0, -60.0, -81.0),
             draw(0.0, -30.0, -32.0, -31.0)]
    g = mock_physics.gap_by_param(draws, "latency", 200)
    assert list(g) == ["0", "4"]
    assert g["0"]["robots"] == 2 and g["0"]["oracle_minus_dr"] == 8.0
    assert g["0"]["adaptive_minus_dr"] == 7.0 and g["0"]["share"] == 7.0 / 8.0
    assert g["4"]["share"] == 9.0 / 30.0
    total_gap = sum(x["oracle_minus_dr"] for x in g.values())
    total_rma = sum(x["adaptive_minus_dr"] for x in g.values())
    assert total_rma / total_gap == 16.0 / 38.0  # the split's S(200) over these robots
    lone = mock_physics.gap_by_param(draws[2:], "latency", 200)
    assert lone["0"]["share"] is None  # no gap to close: no share
    draws[2]["return"]["oracle"] = -29.5  # a gap of 0.5 per robot: noise, no share
    assert mock_physics.gap_by_param(draws[2:], "latency", 200)["0"]["share"] is None
