"""The export contract of the agent modules, and recurrent state across episodes."""

import pytest
import torch

from metabot.algos.agents import MLPAgent, RL2Agent, RMAAgent, build_agent
from metabot.algos.runs import load_agent, save_agent
from metabot.errors import CheckpointError

O, A, P = 6, 2, 4


def _agents():
    torch.manual_seed(0)
    return [
        MLPAgent(O, A, P, algo="dr", hidden=[16, 16]),
        MLPAgent(O, A, P, algo="oracle", use_privileged=True, hidden=[16, 16]),
        RL2Agent(O, A, P, hidden_size=8, head=[8]),
        RL2Agent(O, A, P, hidden_size=8, head=[8], obs_skip=True, task_head=True),
        RMAAgent(O, A, P, hidden=[16], history_len=12, adapt_channels=4),
        RMAAgent(O, A, P, hidden=[16], history_len=12, adapt_channels=4, latent_smoothing=0.1),
    ]


def _randomize(agent):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in agent.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return agent


@pytest.mark.parametrize("agent", _agents(), ids=lambda a: a.algo)
def test_forward_contract_shapes_clip_and_trace(agent):
    agent = _randomize(agent).eval()
    B = 3
    g = torch.Generator().manual_seed(2)
    inputs = [torch.randn(x.shape, generator=g) * 10 for x in agent.example_inputs(B)[:5]]
    state = agent.initial_state(B)
    assert [tuple(s.shape[1:]) for s in state] == agent.state_shapes
    out = agent(*inputs, *state)
    assert isinstance(out, tuple) and len(out) == 1 + len(state)
    assert out[0].shape == (B, A)
    assert out[0].abs().max() <= 1.0  # clipped inside
    for new, old in zip(out[1:], state, strict=True):
        assert new.shape == old.shape
    traced = torch.jit.trace(agent, (*inputs, *state))
    for a, b in zip(traced(*inputs, *state), out, strict=True):
        torch.testing.assert_close(a, b)
    d = agent.describe()
    assert (d["obs_dim"], d["act_dim"], d["privileged_dim"]) == (O, A, P)


def test_rl2_task_head_is_training_only():
    """The auxiliary task head reads the GRU state, never changes the action."""
    agent = _randomize(RL2Agent(O, A, P, hidden_size=8, head=[8], task_head=True)).eval()
    x = [torch.randn(2, O), torch.randn(2, A), torch.randn(2, 1), torch.zeros(2, 1),
         torch.zeros(2, P), torch.zeros(2, 8)]
    before = agent(*x)[0]
    feats, _ = agent.sequence(*(t[None] for t in x[:4]), x[5])
    assert agent.task_prediction(feats).shape == (1, 2, P)
    with torch.no_grad():
        agent.task_head.weight.add_(1.0)
    torch.testing.assert_close(agent(*x)[0], before)


def test_oracle_reads_privileged_and_dr_ignores_it():
    dr, oracle = (_randomize(a).eval() for a in _agents()[:2])
    x = list(dr.example_inputs(2))
    x[0] = torch.randn(2, O)
    for agent, should_change in ((dr, False), (oracle, True)):
        a1 = agent(*x[:4], torch.zeros(2, P))[0]
        a2 = agent(*x[:4], torch.ones(2, P))[0]
        assert (not torch.equal(a1, a2)) == should_change


@pytest.mark.parametrize("obs_skip", [False, True])
def test_rl2_hidden_carries_across_episode_boundary_and_matches_sequence(obs_skip):
    agent = _randomize(RL2Agent(O, A, P, hidden_size=8, head=[8], obs_skip=obs_skip)).eval()
    g = torch.Generator().manual_seed(3)
    T, B = 6, 2
    obs = torch.randn(T, B, O, generator=g)
    pa = torch.randn(T, B, A, generator=g)
    pr = torch.randn(T, B, 1, generator=g)
    first = torch.zeros(T, B, 1)
    first[0] = 1.0
    first[3] = 1.0  # a second episode of the same task starts at t = 3
    priv = torch.zeros(B, P)
    h = agent.initial_state(B)[0]
    actions = []
    for t in range(T):
        a, h_new = agent(obs[t], pa[t], pr[t], first[t], priv, h)
        if t == 3:  # the episode reset does not reset the hidden state
            a_fresh, _ = agent(obs[t], pa[t], pr[t], first[t], priv, torch.zeros_like(h))
            assert not torch.allclose(a, a_fresh)
        h = h_new
        actions.append(a)
    feats, h_seq = agent.sequence(obs, pa, pr, first, agent.initial_state(B)[0])
    torch.testing.assert_close(torch.clamp(agent.actor(feats), -1, 1), torch.stack(actions))
    torch.testing.assert_close(h_seq, h)
    # on a first step the previous action and reward are ignored (masked)
    a1, _ = agent(obs[3], pa[3], pr[3], first[3], priv, h)
    a2, _ = agent(obs[3], pa[3] * 0 + 5, pr[3] * 0 - 5, first[3], priv, h)
    torch.testing.assert_close(a1, a2)


def test_rma_history_window_marks_episode_boundaries():
    agent = _randomize(RMAAgent(O, A, P, hidden=[16], history_len=12, adapt_channels=4)).eval()
    B = 2
    hist = agent.initial_state(B)[0]
    assert hist.shape == (B, 12, O + A + 2) and hist.abs().sum() == 0
    obs, pa = torch.randn(B, O), torch.ones(B, A)
    first = torch.tensor([[1.0], [0.0]])
    _, hist = agent(obs, pa, torch.zeros(B, 1), first, torch.zeros(B, P), hist)
    last = hist[:, -1]
    # env 0 starts an episode: its previous command is zeroed and the boundary is marked
    assert torch.equal(last[0, O : O + A], torch.zeros(A))
    assert torch.equal(last[1, O : O + A], torch.ones(A))
    assert last[0, O + A] == 1.0 and last[1, O + A] == 0.0
    assert torch.equal(last[:, -1], torch.ones(B))  # valid flag
    assert hist[:, :-1].abs().sum() == 0  # the rest is still padding
    # the action is the policy on the adaptation module's latent from that window
    a, _ = agent(obs, pa, torch.zeros(B, 1), first, torch.zeros(B, P), agent.initial_state(B)[0])
    z = agent.adapt(hist)
    torch.testing.assert_close(a, torch.clamp(agent.actor_mean(obs, z), -1, 1))


def test_rma_latent_smoothing_is_a_fading_average_weighted_by_window_fill():
    """The smoothed z is sum_i w_i (1-a)^(t-i) z_i / sum_i w_i (1-a)^(t-i), z_i the window
    estimate of step i and w_i its window's valid fraction; the policy acts on it."""
    H, a = 6, 0.2
    agent = _randomize(RMAAgent(O, A, P, hidden=[16], history_len=H, adapt_channels=4,
                                latent_smoothing=a)).eval()
    assert agent.state_shapes == [(H, O + A + 2), (agent.latent_dim + 1,)]
    g = torch.Generator().manual_seed(4)
    hist, running = agent.initial_state(1)
    num, den = 0.0, 0.0
    for t in range(15):
        obs, pa = torch.randn(1, O, generator=g), torch.randn(1, A, generator=g)
        first = torch.tensor([[1.0 if t in (0, 9) else 0.0]])  # a new episode at step 9
        action, hist, running = agent(obs, pa, torch.zeros(1, 1), first, torch.zeros(1, P),
                                      hist, running)
        w = min(t + 1, H) / H
        num = (1 - a) * num + w * agent.adapt(hist)
        den = (1 - a) * den + w
        torch.testing.assert_close(running[:, :-1], num / den)
        torch.testing.assert_close(running[:, -1:], torch.tensor([[den]]))
        z = agent.adapt(hist) if t == 0 else num / den  # the first step takes its own estimate
        torch.testing.assert_close(action, torch.clamp(agent.actor_mean(obs, z), -1, 1))
    with pytest.raises(ValueError, match="latent_smoothing"):
        RMAAgent(O, A, P, latent_smoothing=1.0)


def test_save_and_load_agent_round_trip(tmp_path):
    import json

    from metabot.algos.config import digest

    agent = _randomize(RL2Agent(O, A, P, hidden_size=8, head=[8])).eval()
    body = {"algo": "rl2", "tasks": "toy-reach", "seed": 0, "steps": 1, "params": {}}
    d = digest(body)
    (tmp_path / "config.json").write_text(json.dumps({**body, "digest": d, "run_id": "x"}))
    save_agent(tmp_path, agent)
    loaded, info = load_agent(tmp_path)
    x = agent.example_inputs(2)
    for a, b in zip(agent(*x), loaded(*x), strict=True):
        torch.testing.assert_close(a, b)
    assert info["algo"] == "rl2" and info["tasks"] == "toy-reach" and info["run_id"] == "x"
    assert build_agent(agent.spec()).describe() == agent.describe()
    # a corrupt agent file and an edited config are user errors, not tracebacks
    (tmp_path / "agent.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        load_agent(tmp_path)
    save_agent(tmp_path, agent)
    (tmp_path / "config.json").write_text(json.dumps({**body, "seed": 1, "digest": d,
                                                      "run_id": "x"}))
    with pytest.raises(CheckpointError, match="digest"):
        load_agent(tmp_path)
