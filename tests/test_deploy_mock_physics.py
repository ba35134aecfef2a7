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
