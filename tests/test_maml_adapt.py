"""The gradient-based agent: export contract and the adaptation entry point (issue 4)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from metabot.algos import gradient_functional as gf
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.maml_adapt import adapt
from metabot.algos.maml_numpy_head import advantages


def _agent(head_only: bool, learn_steps: bool = False, seed: int = 0) -> GradientAgent:
    torch.manual_seed(seed)
    agent = GradientAgent(4, 2, 3, hidden=(16, 16), adapt_head_only=head_only,
                          learn_step_sizes=learn_steps, inner_lr=0.2, inner_steps=2,
                          gamma=0.95, gae_lambda=0.9)
    with torch.no_grad():
        agent.policy.head.weight.normal_(0, 0.3)
        agent.obs_norm.update(torch.randn(500, 4) * 3.0 + 1.0)
        for p in agent.step_sizes.values():
            p.uniform_(0.05, 0.3)
    return agent


def _transitions(n=45, seed=1):
    rng = np.random.default_rng(seed)
    ends = np.zeros(n)
    ends[[14, 29, 44]] = 1.0
    return {"obs": rng.normal(size=(n, 4)) * 3.0 + 1.0, "actions": rng.normal(size=(n, 2)),
            "rewards": rng.normal(size=n), "ends": ends}


def _torch_reference(agent: GradientAgent, tr: dict) -> dict[str, torch.Tensor]:
    """The same adaptation by autograd in float64 on the agent's own modules."""
    policy = agent.policy.double()
    norm = agent.obs_norm.double()
    params = {k: v.detach() for k, v in policy.named_parameters()}
    obs = norm(torch.from_numpy(tr["obs"]))
    act = torch.from_numpy(tr["actions"])
    adv = advantages(obs.numpy(), tr["rewards"], tr["ends"], gamma=0.95, lam=0.9)
    batch = {"obs": obs, "actions": act, "adv": torch.from_numpy(adv),
             "logp_old": gf.log_prob(policy, params, obs, act),
             "weights": torch.ones(len(adv), dtype=torch.float64)}
    steps = {k: v.detach().double() for k, v in agent.step_dict().items()}
    return gf.adapt(policy, params, batch, steps, keys=agent.adapt_keys, inner_steps=2)


@pytest.mark.parametrize("head_only,learn_steps", [(True, False), (True, True), (False, True)])
def test_adapt_entry_point_matches_autograd(head_only, learn_steps):
    agent = _agent(head_only, learn_steps)
    tr = _transitions()
    params, spec = agent.adapt_package()
    new = adapt(params, tr, spec)
    ref = _torch_reference(agent, tr)
    for k, v in ref.items():
        np.testing.assert_allclose(new[k], v.detach().numpy(), rtol=1e-9, atol=1e-11)
    changed = [k for k in params if not np.array_equal(params[k], new[k])]
    assert set(changed) == ({"head.weight", "head.bias"} if head_only else set(params))


def test_agent_follows_export_contract():
    agent = _agent(True)
    inputs = agent.example_inputs(batch=7)
    obs = torch.randn(7, 4) * 50.0
    (action,) = agent(obs, *inputs[1:])
    assert action.shape == (7, 2)
    assert action.abs().max() <= 1.0
    expected = torch.clamp(agent.policy(agent.obs_norm(obs)), -1.0, 1.0)
    torch.testing.assert_close(action, expected)
    assert agent.describe()["adaptation"]["kind"] == "head"
    assert agent.budget_unit == "episodes"


def test_adapted_agent_acts_with_adapted_parameters():
    agent = _agent(False)
    tr = _transitions()
    clone = agent.adapted(tr)
    obs = torch.randn(5, 4)
    inputs = agent.example_inputs(batch=5)[1:]
    assert not torch.allclose(clone(obs, *inputs)[0], agent(obs, *inputs)[0])
    unchanged = agent.adapted({k: v[:0] for k, v in tr.items()})
    torch.testing.assert_close(unchanged(obs, *inputs)[0], agent(obs, *inputs)[0])


def test_full_adaptation_without_torch_names_the_extra():
    agent = _agent(False)
    params, spec = agent.adapt_package()
    head_params, head_spec = _agent(True).adapt_package()
    code = (
        "import sys, pickle\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('no torch here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from metabot.algos.maml_adapt import adapt\n"
        "from metabot.errors import MissingExtraError\n"
        "params, spec, hp, hs, tr = pickle.load(sys.stdin.buffer)\n"
        "new = adapt(hp, tr, hs)\n"  # head-only works without torch
        "assert not (new['head.weight'] == hp['head.weight']).all()\n"
        "try:\n"
        "    adapt(params, tr, spec)\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "assert 'torch' not in sys.modules\n"
    )
    import pickle

    payload = pickle.dumps((params, spec, head_params, head_spec, _transitions()))
    out = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                         check=True)
    text = out.stdout.decode()
    assert "full-network adaptation" in text and "metabot[train]" in text
