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
