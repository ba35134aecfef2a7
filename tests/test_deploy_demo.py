"""A miniature `metabot demo`: mock robots in other processes, three agents, the report."""

import json

import pytest

from metabot.deploy import demo


@pytest.mark.timeout(180)
def test_demo_end_to_end_small(tmp_path):
    rep = demo.run_demo(tmp_path, draws=2, fault_draws=1, jobs=3, budgets=(0, 20),
                        fault_budgets=(0, 20), steps=20, seed=1)
    saved = json.loads((tmp_path / "report.json").read_text())
    for key in ("normalized_score", "ci95", "dr_return", "oracle_return", "return"):
        assert key in saved, key
    assert set(saved["return"]) == {"0", "20"}
    assert saved["test"]["tasks"] == 2 and saved["fault"]["tasks"] == 1
    draws = saved["test"]["draws"]
    assert draws[0]["hidden"] != draws[1]["hidden"]  # two different held-out robots
    pc = saved["payload_change"]
    assert pc["step"] == 20 and pc["from_kg"] != pc["to_kg"]
    assert set(pc["time_to_recover_steps"]) == {"rma", "dr"}
    assert set(saved["mock_status_after"].values()) <= {"holding", "torque_off"}
    assert saved["loop_timing"]["rate_hz"] == 50.0
    for f in ("curve", "fault_curve", "payload_plot"):
        assert (tmp_path / rep["files"][f].split("/")[-1]).stat().st_size > 1000
    assert len(list((tmp_path / "cycles").glob("*.cycles.jsonl"))) >= 9


def _fake_job(index: int, returns: dict[str, list[list[float]]]) -> dict:
    """A curve job's raw result with given eval returns per agent: [budget][goal]."""
    agents = {}
    for name, per_budget in returns.items():
        budgets = (0, 20) if name == "rma" else (0,)
        segs = [
            {"tag": f"eval k={k} goal={g}", "return": r, "final_tip_error_mm": -r,
             "mean_tip_error_mm": -2 * r}
            for k, goals in zip(budgets, per_budget, strict=True) for g, r in enumerate(goals)
        ]
        agents[name] = {"segments": segs[::-1]}  # any order: sorted by goal
    return {"job": {"kind": "curve", "split": "test", "task_index": index, "seed": 0},
            "hidden": {"task_params": {"params": {"i": index}}, "effects": {}},
            "agents": agents}


def test_split_summary_averages_goals_before_draws():
    # draw 0: goals give rma k=20 -5 and -15 (mean -10); dr -20, -20; oracle -10, -10
    results = [
        _fake_job(0, {"rma": [[-20, -20], [-5, -15]], "dr": [[-20, -20]], "oracle": [[-10, -10]]}),
        _fake_job(1, {"rma": [[-40, -40], [-30, -30]], "dr": [[-40, -40]], "oracle": [[-30, -20]]}),
    ]
    out = demo.split_summary(results, "test", (0, 20), seed=0)
    assert out["goals_per_task"] == 2 and out["tasks"] == 2
    # means over draws of goal means: rma(20) -20, dr -30, oracle -17.5
    assert out["return"]["20"] == pytest.approx(-20.0)
    assert out["dr_return"] == pytest.approx(-30.0)
    assert out["oracle_return"] == pytest.approx(-17.5)
    assert out["normalized_score"]["20"] == pytest.approx(10.0 / 12.5)
    assert out["normalized_score"]["0"] == pytest.approx(0.0)
    assert out["draws"][0]["return"]["rma k=20"] == pytest.approx(-10.0)
    assert out["draws"][0]["return_per_goal"]["rma k=20"] == [-5.0, -15.0]
    assert out["tip_error_mm"]["rma"]["20"]["final_mm"] == pytest.approx(20.0)
