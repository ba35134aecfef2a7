"""Export parity for the real agent classes of every algorithm (metabot.algos), at the
arm6-reach dimensions, including the numpy head adaptation of the gradient family."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch

from metabot.export.agent import export_loaded
from metabot.export.parity import TOLERANCE, reference_stepper
from metabot.runtime import load

agents_mod = pytest.importorskip("metabot.algos.agents")
from metabot.sim.arm import ArmDescription, forward_kinematics  # noqa: E402

from metabot.algos import maml_adapt  # noqa: E402
from metabot.algos.gradient_agent import GradientAgent  # noqa: E402
from metabot.runtime.robot import arm_from_metadata  # noqa: E402

ARM = ArmDescription.from_mjcf(Path(__file__).parents[1] / "sim" / "arm6.xml")
OBS, ACT, PRIV = ARM.obs_dim, ARM.n_joints, 12


def fake_dist():
    """The parts of a TaskDistribution that export reads (no MuJoCo needed)."""
    ranges = {"link_mass": {"range": [0.8, 1.25], "unit": "x", "count": 6}}
    return SimpleNamespace(dt=0.02, ranges=lambda: ranges, arm=ARM)


def trained_looking(agent):
    """Non-trivial normalizer statistics and weights, as after training."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, buf in agent.named_buffers():
            if name.endswith("mean"):
                buf.copy_(0.3 * torch.randn(buf.shape, generator=g))
            elif name.endswith("var"):
                buf.copy_(0.2 + torch.rand(buf.shape, generator=g))
        for p in agent.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return agent.eval()


def make(algo: str):
    torch.manual_seed(0)
    if algo == "dr":
        agent = agents_mod.MLPAgent(OBS, ACT, PRIV, algo="dr")
    elif algo == "oracle":
        agent = agents_mod.MLPAgent(OBS, ACT, PRIV, algo="oracle", use_privileged=True)
    elif algo == "rl2":
        agent = agents_mod.RL2Agent(OBS, ACT, PRIV)
    elif algo == "rl2-task-input":
        agent = agents_mod.RL2Agent(OBS, ACT, PRIV, task_head=True, task_input=True)
    elif algo == "rma":
        agent = agents_mod.RMAAgent(OBS, ACT, PRIV)
    elif algo == "anil":
        agent = GradientAgent(OBS, ACT, PRIV, algo="anil", adapt_head_only=True, inner_lr=0.05)
    elif algo == "metasgd-head":
        agent = GradientAgent(
            OBS,
            ACT,
            PRIV,
            algo="metasgd",
            adapt_head_only=True,
            learn_step_sizes=True,
            inner_lr=0.05,
            inner_steps=2,
        )
    elif algo == "anil-baseline":
        agent = GradientAgent(OBS, ACT, PRIV, algo="anil", adapt_head_only=True, inner_lr=0.05,
                              inner_baseline="learned", baseline_hidden=(8, 8), gae_lambda=0.8)
    elif algo == "maml-model":
        agent = GradientAgent(OBS, ACT, PRIV, algo="maml", inner_lr=1.0, inner_loss="model",
                              context_dim=4, model_history=2, context_ridge=0.01)
    else:
        agent = GradientAgent(OBS, ACT, PRIV, algo=algo)
    return trained_looking(agent)


def info(algo: str) -> dict:
    return {
        "run_id": f"arm6-reach-{algo}-seed0-abc",
        "algo": algo,
        "tasks": "arm6-reach",
        "seed": 0,
        "config_digest": "f" * 64,
        "env_steps": 1000,
        "finished": True,
    }


ALGOS = ["dr", "oracle", "rl2", "rl2-task-input", "rma", "anil", "metasgd-head", "maml",
         "fomaml", "reptile", "maml-model", "anil-baseline"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("agents")
    for algo in ALGOS:
        agent = make(algo)
        path, report = export_loaded(agent, info(algo), fake_dist(), root / f"{algo}.onnx")
        out[algo] = (agent, path, report)
    return out


@pytest.mark.parametrize("algo", ALGOS)
def test_parity_and_checker(exported, algo):
    _, path, report = exported[algo]
    assert report.random_steps == 1000 and report.sequence_steps == 200
    assert report.max_abs_diff <= TOLERANCE
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_metadata_describes_the_arm(exported):
    meta = load(exported["rma"][1]).metadata
    assert meta["robot"]["joint_names"] == list(ARM.joints)
    assert meta["robot"]["arm"]["chain"] and meta["task"]["control_rate_hz"] == pytest.approx(50)
    assert [p["name"] for p in meta["observation"]["layout"]][:3] == [
        "joint_pos",
        "joint_vel",
        "joint_effort",
    ]
    assert meta["history_length"] == 40 and meta["state"][0]["kind"] == "history"
    assert meta["state"][0]["shape"] == [1, 40, OBS + ACT + 2]
    assert len(meta["normalizer"]["mean"]) == OBS
    assert meta["adaptation"]["kind"] == "context"
    assert json.loads(json.dumps(meta)) == meta
    rebuilt = arm_from_metadata(meta)
    assert rebuilt == ARM  # the deploy side rebuilds the exact arm, FK chain included
    q = np.random.default_rng(0).uniform(ARM.lower, ARM.upper, (5, ACT))
    np.testing.assert_array_equal(forward_kinematics(rebuilt, q), forward_kinematics(ARM, q))


def test_full_network_adaptation_needs_train_extra(exported):
    agent = load(exported["maml"][1])
    assert agent.metadata["adaptation"] == {"kind": "full", "requires": ["train"]}
    with pytest.raises(Exception, match="train"):
        agent.adapt({})


def _episodes(agent, rng, n_episodes=3, steps=30):
    """Roll a fake environment with the runtime's exploration to get transitions."""
    obs_l, act_l, rew_l, end_l = [], [], [], []
    for _ in range(n_episodes):
        agent.new_episode()
        obs = rng.standard_normal(OBS).astype(np.float32)
        for t in range(steps):
            a = agent.act(obs, explore=True)
            obs_l.append(obs)
            act_l.append(agent.last_sample)
            rew_l.append(-float(np.sum((a - 0.3) ** 2)))
            end_l.append(float(t == steps - 1))
            obs = (0.9 * obs + 0.1 * rng.standard_normal(OBS)).astype(np.float32)
    return {
        "obs": np.array(obs_l),
        "actions": np.array(act_l),
        "rewards": np.array(rew_l),
        "ends": np.array(end_l),
    }


@pytest.mark.parametrize("algo", ["anil", "metasgd-head", "anil-baseline"])
def test_head_adaptation_matches_torch(exported, algo):
    """runtime.adapt (numpy, closed form) == the agent's own adaptation (metabot.algos) and
    == torch autograd on the head; the adapted runtime acts like the adapted torch agent."""
    torch_agent, path, _ = exported[algo]
    agent = load(path, seed=1)
    tr = _episodes(agent, np.random.default_rng(0))
    summary = agent.adapt(tr)
    assert summary["steps"] == 90 and summary["episodes"] == 3 and summary["head_change"] > 0
    adapted = torch_agent.adapted(tr)
    ours = agent.head_parameters()
    np.testing.assert_allclose(
        ours["head_weight"], adapted.policy.head.weight.detach().numpy(), atol=TOLERANCE, rtol=0
    )
    np.testing.assert_allclose(
        ours["head_bias"], adapted.policy.head.bias.detach().numpy(), atol=TOLERANCE, rtol=0
    )
    # The same head step through torch autograd (maml_adapt's full-network path, head keys only).
    params, spec = torch_agent.adapt_package()
    autograd = maml_adapt.adapt(params, tr, {**spec, "adapt": "all"})
    np.testing.assert_allclose(ours["head_weight"], autograd["head.weight"], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(ours["head_bias"], autograd["head.bias"], atol=TOLERANCE, rtol=0)
    rng = np.random.default_rng(9)
    for _ in range(50):
        obs = rng.standard_normal(OBS).astype(np.float32)
        with torch.no_grad():
            ref = adapted(*[torch.from_numpy(obs)[None], *adapted.example_inputs()[1:]])[0]
        np.testing.assert_allclose(agent.act(obs), ref[0].numpy(), atol=TOLERANCE, rtol=0)
    agent.reset()  # a new task forgets the adaptation
    np.testing.assert_array_equal(
        agent.head_parameters()["head_weight"],
        np.asarray(agent.metadata["adaptation"]["initial"]["head_weight"], np.float32),
    )


def test_model_kind_context_step_matches_torch(exported):
    """The model inner loss: runtime.adapt (numpy) solves the same context as the agent's
    own adaptation, the adapted runtime acts like the adapted torch agent, reset forgets."""
    torch_agent, path, report = exported["maml-model"]
    agent = load(path, seed=1)
    assert agent.metadata["adaptation"]["kind"] == "model"
    tr = _episodes(agent, np.random.default_rng(0))
    summary = agent.adapt(tr)
    assert summary["episodes"] == 3 and summary["context_change"] > 0
    adapted = torch_agent.adapted(tr)
    z = agent.head_parameters()["context"]
    np.testing.assert_allclose(z, adapted.policy.context.detach().numpy(), atol=TOLERANCE,
                               rtol=0)
    rng = np.random.default_rng(9)
    for _ in range(20):
        obs = rng.standard_normal(OBS).astype(np.float32)
        with torch.no_grad():
            ref = adapted(*[torch.from_numpy(obs)[None], *adapted.example_inputs()[1:]])[0]
        np.testing.assert_allclose(agent.act(obs), ref[0].numpy(), atol=TOLERANCE, rtol=0)
    agent.reset()
    np.testing.assert_array_equal(
        agent.head_parameters()["context"],
        np.asarray(agent.metadata["adaptation"]["initial"]["context"], np.float32))


@pytest.mark.parametrize("algo", ["rl2", "anil"])
def test_reference_stepper_from_metadata(exported, algo):
    """The torch reference that `bench infer` times is the network the runtime runs."""
    torch_agent, path, _ = exported[algo]
    agent = load(path)
    ref = reference_stepper(torch_agent, agent.metadata)
    rng = np.random.default_rng(2)
    for _ in range(20):
        obs = rng.standard_normal(OBS).astype(np.float32)
        np.testing.assert_allclose(agent.act(obs), ref.act(obs), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize(("algo", "change"), [("anil", "head_change"),
                                             ("maml-model", "context_change")])
def test_head_adaptation_runs_without_torch(exported, algo, change):
    """On a robot computer (no torch): explore, adapt between episodes, act adapted."""
    code = f"""
import sys
for name in ("torch", "mujoco", "onnx"):
    sys.modules[name] = None
import numpy as np
from metabot.runtime import load
agent = load({str(exported[algo][1])!r}, seed=0)
rng = np.random.default_rng(0)
obs = rng.standard_normal((40, {OBS})).astype(np.float32)
acts = []
for o in obs:
    agent.act(o, explore=True)
    acts.append(agent.last_sample)
info = agent.adapt({{"obs": obs, "actions": np.array(acts), "rewards": -np.abs(obs[:, 0]),
                     "ends": (np.arange(40) % 20 == 19).astype(float)}})
assert info[{change!r}] > 0 and info["episodes"] == 2, info
print(agent.act(obs[0]).shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"({ACT},)"


def test_smoothed_rma_state_survives_episodes_and_reset_forgets_it(tmp_path):
    """The running z estimate is graph state: kept by new_episode, zeroed by reset."""
    torch.manual_seed(0)
    agent = trained_looking(agents_mod.RMAAgent(OBS, ACT, PRIV, latent_smoothing=0.05))
    path, report = export_loaded(agent, info("rma"), fake_dist(), tmp_path / "rma.onnx")
    assert report.max_abs_diff <= TOLERANCE
    rt = load(path)
    assert [(s["shape"], s["kind"]) for s in rt.metadata["state"]] == [
        ([1, agent.history_len, agent.entry_dim], "history"),
        ([1, agent.latent_dim + 1], "latent_average")]
    rng = np.random.default_rng(0)
    for _ in range(5):
        rt.act(rng.standard_normal(OBS).astype(np.float32))
    running = rt.state[1]
    assert running[0, -1] > 0  # the estimate's weight
    rt.new_episode()
    np.testing.assert_array_equal(rt.state[1], running)
    rt.reset()
    assert not rt.state[1].any()
