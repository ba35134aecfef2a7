"""Export parity on small modules that follow the agent contract (MLP, oracle, GRU state,
history window), and on the real agents of every algorithm once a run directory exists."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from metabot import __version__
from metabot.errors import ArtifactError
from metabot.export.onnx_export import export_module
from metabot.export.parity import TOLERANCE, TorchStepper
from metabot.runtime import load

OBS, ACT, PRIV, HIST = 9, 3, 4, 8


class Normalized(nn.Module):
    """Shared parts: an observation normalizer and a tanh-squashed, clipped action."""

    def __init__(self, obs_dim: int):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("mean", torch.randn(obs_dim, generator=g))
        self.register_buffer("std", torch.rand(obs_dim, generator=g) + 0.5)

    def norm(self, obs):
        return torch.clamp((obs - self.mean) / self.std, -10.0, 10.0)


class MlpAgent(Normalized):
    """dr-like: obs only."""

    def __init__(self, hidden: int = 64):
        super().__init__(OBS)
        self.pi = nn.Sequential(nn.Linear(OBS, hidden), nn.Tanh(), nn.Linear(hidden, ACT))

    def forward(self, obs, prev_action, prev_reward, first, privileged):
        return (torch.clamp(torch.tanh(self.pi(self.norm(obs))), -1.0, 1.0),)


class OracleAgent(Normalized):
    """oracle-like: obs + privileged features."""

    def __init__(self):
        super().__init__(OBS)
        self.pi = nn.Sequential(nn.Linear(OBS + PRIV, 32), nn.ELU(), nn.Linear(32, ACT))

    def forward(self, obs, prev_action, prev_reward, first, privileged):
        return (torch.tanh(self.pi(torch.cat([self.norm(obs), privileged], -1))),)


class GruAgent(Normalized):
    """rl2-like: GRU over (obs, prev action, prev reward, first); state carried across steps."""

    def __init__(self, hidden: int = 16):
        super().__init__(OBS)
        self.cell = nn.GRUCell(OBS + ACT + 2, hidden)
        self.head = nn.Linear(hidden, ACT)

    def forward(self, obs, prev_action, prev_reward, first, privileged, h):
        x = torch.cat([self.norm(obs), prev_action, prev_reward, first], -1)
        h = self.cell(x, h)
        return torch.tanh(self.head(h)), h


class HistoryAgent(Normalized):
    """rma-like: a window of the last HIST (obs, applied action, first) rows, shifted in-graph,
    encoded to a latent that conditions the policy."""

    def __init__(self):
        super().__init__(OBS)
        row = OBS + ACT + 1
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(HIST * row, 16), nn.Tanh(), nn.Linear(16, 4)
        )
        self.pi = nn.Sequential(nn.Linear(OBS + 4, 32), nn.Tanh(), nn.Linear(32, ACT))

    def forward(self, obs, prev_action, prev_reward, first, privileged, hist):
        o = self.norm(obs)
        row = torch.cat([o, prev_action, first], -1).unsqueeze(1)
        hist = torch.cat([hist[:, 1:], row], 1)
        z = self.encoder(hist)
        return torch.tanh(self.pi(torch.cat([o, z], -1))), hist


def toy_metadata(module, algorithm: str, privileged_dim: int = 0, history: int = 0) -> dict:
    return {
        "format_version": 1,
        "metabot_version": __version__,
        "algorithm": algorithm,
        "task": {
            "name": "toy",
            "ranges": {"mass": [0.5, 2.0]},
            "control_rate_hz": 50.0,
            "dt": 0.02,
        },
        "observation": {
            "dim": OBS,
            "layout": [
                {"name": "qpos", "start": 0, "size": 3},
                {"name": "qvel", "start": 3, "size": 6},
            ],
        },
        "normalizer": {"mean": module.mean.tolist(), "std": module.std.tolist(), "clip": 10.0},
        "action": {
            "dim": ACT,
            "space": "box",
            "low": [-1.0] * ACT,
            "high": [1.0] * ACT,
            "scale": [0.1] * ACT,
            "offset": [0.0] * ACT,
            "meaning": "joint target delta (rad)",
        },
        "robot": None,
        "privileged_dim": privileged_dim,
        "history_length": history,
        "adaptation": {
            "kind": "context" if algorithm in ("rl2", "rma") else "none",
            "requires": [],
        },
        "training": {"run_id": "toy-run", "config_digest": "sha256:" + "0" * 64, "seed": 0},
    }


CASES = {
    "dr": (MlpAgent, 0, [], 0),
    "oracle": (OracleAgent, PRIV, [], 0),
    "rl2": (GruAgent, 0, [[1, 16]], 0),
    "rma": (HistoryAgent, 0, [[1, HIST, OBS + ACT + 1]], HIST),
}


def build(algorithm: str, path, **kw):
    cls, priv, shapes, hist = CASES[algorithm]
    torch.manual_seed(0)
    module = cls().eval()
    meta = toy_metadata(module, algorithm, priv, hist)
    out, report = export_module(module, path, meta, shapes, **kw)
    return module, out, report


@pytest.mark.parametrize("algorithm", list(CASES))
def test_toy_parity(tmp_path, algorithm):
    module, out, report = build(algorithm, tmp_path / f"{algorithm}.onnx")
    assert report.random_steps == 1000 and report.sequence_steps == 200
    assert report.max_abs_diff <= TOLERANCE
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    # Independently of the built-in check: a fresh load, 200 steps with a reset in between.
    agent = load(out)
    _, priv, shapes, _ = CASES[algorithm]
    ref = TorchStepper(module, ACT, priv, shapes)
    rng = np.random.default_rng(5)
    for t in range(200):
        if t == 120:
            agent.reset()
            ref.reset()
        obs = rng.standard_normal(OBS).astype(np.float32)
        p = rng.standard_normal(priv).astype(np.float32) if priv else None
        np.testing.assert_allclose(
            agent.act(obs, reward=0.3, privileged=p),
            ref.act(obs, reward=0.3, privileged=p),
            atol=TOLERANCE,
            rtol=0,
        )


class BranchyAgent(MlpAgent):
    """Python control flow on data: tracing freezes one branch, a classic silent export bug."""

    def forward(self, obs, prev_action, prev_reward, first, privileged):
        out = super().forward(obs, prev_action, prev_reward, first, privileged)[0]
        return (out if float(obs.sum()) > 0 else -out,)


def test_parity_catches_a_wrong_graph(tmp_path):
    torch.manual_seed(0)
    module = BranchyAgent().eval()
    out = tmp_path / "bad.onnx"
    with pytest.raises(ArtifactError, match="parity failed"):
        export_module(module, out, toy_metadata(module, "dr"), [])
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_is_reproducible_and_records_its_check(tmp_path):
    _, a, report = build("rl2", tmp_path / "a.onnx", n_random=50)
    _, b, _ = build("rl2", tmp_path / "b.onnx", n_random=50)
    assert a.read_bytes() == b.read_bytes()  # no timestamps: same run, same artifact
    export = load(a).metadata["export"]
    assert export["random_steps"] == 50 and export["max_abs_diff"] == report.max_abs_diff


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArtifactError, match="cannot write"):
        build("dr", blocker / "agent.onnx", n_random=10)
