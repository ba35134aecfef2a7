"""Agent modules: the export contract of docs/architecture.md "Agents".

Every agent's inference is one `forward`

    forward(obs[B,O], prev_action[B,A], prev_reward[B,1], first[B,1], privileged[B,P], *state)
        -> (action[B,A], *new_state)

with observation normalization (frozen buffers), the deterministic (mean) action and
clipping to [-1, 1] inside. There is no data-dependent Python control flow, so
`torch.jit.trace` and `torch.onnx.export` see one fixed graph. Each agent describes itself
with attributes (`algo`, `obs_dim`, `act_dim`, `privileged_dim`, `state_shapes`,
`history_len`, `budget_unit`) and `spec()` returns what `build_agent` needs to rebuild it.

Training-only methods (`dist_value`, `sequence`, ...) live on the same module so that the
weights trained are exactly the weights exported.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from metabot.algos.nets import RunningNorm, mlp

AGENT_CLASSES: dict[str, type[Agent]] = {}


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Class decorator: let `build_agent` rebuild this agent class from its spec."""
    AGENT_CLASSES[cls.__name__] = cls
    return cls


def build_agent(spec: dict[str, Any]) -> Agent:
    """Rebuild an agent (untrained weights) from `Agent.spec()`."""
    cls = AGENT_CLASSES[spec["class"]]
    return cls(**spec["kwargs"])


class Agent(nn.Module):
    """Base class: the self-description every exported agent carries."""

    algo: str = "?"
    budget_unit: str = "steps"  # what an adaptation budget counts: "steps" or "episodes"
    history_len: int = 0

    def __init__(self, obs_dim: int, act_dim: int, privileged_dim: int, **kwargs: Any):
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.act_dim = int(act_dim)
        self.privileged_dim = int(privileged_dim)
        self._kwargs = dict(
            obs_dim=obs_dim, act_dim=act_dim, privileged_dim=privileged_dim, **kwargs
        )

    # -- self-description ---------------------------------------------------------------
    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shapes of the recurrent state tensors (batch dim excluded)."""
        return []

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Zero state for `batch` fresh tasks (what a runtime `reset()` starts from)."""
        return tuple(torch.zeros(batch, *shape) for shape in self.state_shapes)

    def spec(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "kwargs": dict(self._kwargs)}

    def describe(self) -> dict[str, Any]:
        """JSON-safe description for run_info and artifact metadata."""
        return {
            "algo": self.algo,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "privileged_dim": self.privileged_dim,
            "state_shapes": [list(s) for s in self.state_shapes],
            "history_len": self.history_len,
            "budget_unit": self.budget_unit,
            "class": type(self).__name__,
        }

    def example_inputs(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Inputs of the right shapes, for tracing/export and tests."""
        return (
            torch.zeros(batch, self.obs_dim),
            torch.zeros(batch, self.act_dim),
            torch.zeros(batch, 1),
            torch.ones(batch, 1),
            torch.zeros(batch, self.privileged_dim),
            *self.initial_state(batch),
        )


def _gaussian_head(act_dim: int, init_log_std: float) -> nn.Parameter:
    return nn.Parameter(torch.full((act_dim,), float(init_log_std)))


@register_agent
class MLPAgent(Agent):
    """Feed-forward policy: `dr` (obs only) or `oracle` (obs + true dynamics features).

    The critic may see the privileged features in both cases (asymmetric actor-critic:
    the critic is never exported, and a better critic makes a fairer baseline).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        privileged_dim: int,
        algo: str = "dr",
        use_privileged: bool = False,
        critic_privileged: bool = True,
        hidden: tuple[int, ...] | list[int] = (256, 256),
        init_log_std: float = -0.5,
        hide_privileged: tuple[int, ...] | list[int] = (),
    ):
        hidden = list(hidden)
        extra = {"hide_privileged": sorted(int(i) for i in hide_privileged)} \
            if hide_privileged else {}
        super().__init__(
            obs_dim, act_dim, privileged_dim, algo=algo, use_privileged=use_privileged,
            critic_privileged=critic_privileged, hidden=hidden, init_log_std=init_log_std,
            **extra,
        )
        # partial-oracle's `hide`: these normalized features are held at 0, their mean. A plain
        # tensor, not a buffer, so agents saved before the option load unchanged.
        self._priv_mask = None
        if hide_privileged:
            self._priv_mask = torch.ones(privileged_dim)
            self._priv_mask[list(hide_privileged)] = 0.0
        self.algo = algo
        self.use_privileged = bool(use_privileged and privileged_dim > 0)
        self.critic_privileged = bool(critic_privileged and privileged_dim > 0)
        self.obs_norm = RunningNorm(obs_dim)
        self.priv_norm = RunningNorm(max(privileged_dim, 1))
        self.value_norm = RunningNorm(1)
        actor_in = obs_dim + (privileged_dim if self.use_privileged else 0)
        critic_in = obs_dim + (privileged_dim if self.critic_privileged else 0)
        self.actor = mlp([actor_in, *hidden, act_dim], out_gain=0.01)
        self.critic = mlp([critic_in, *hidden, 1], out_gain=1.0)
        self.log_std = _gaussian_head(act_dim, init_log_std)

    def _priv(self, privileged: torch.Tensor) -> torch.Tensor:
        if self.privileged_dim == 0:
            return privileged
        x = self.priv_norm(privileged)
        return x if self._priv_mask is None else x * self._priv_mask

    def actor_mean(self, obs: torch.Tensor, privileged: torch.Tensor) -> torch.Tensor:
        x = self.obs_norm(obs)
        if self.use_privileged:
            x = torch.cat([x, self._priv(privileged)], -1)
        return self.actor(x)

    def value(self, obs: torch.Tensor, privileged: torch.Tensor) -> torch.Tensor:
        """Normalized value estimate [B]."""
        x = self.obs_norm(obs)
        if self.critic_privileged:
            x = torch.cat([x, self._priv(privileged)], -1)
        return self.critic(x).squeeze(-1)

    def forward(self, obs, prev_action, prev_reward, first, privileged):  # noqa: D102
        return (torch.clamp(self.actor_mean(obs, privileged), -1.0, 1.0),)


@register_agent
class RL2Agent(Agent):
    """RL^2: a GRU over (obs, previous applied action, previous reward, first flag).

    The hidden state is carried across episodes of one task (the `first` flag tells the
    network an episode restarted) and zeroed only when the task changes.
    """

    algo = "rl2"
    budget_unit = "episodes"

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        privileged_dim: int,
        hidden_size: int = 128,
        head: tuple[int, ...] | list[int] = (128,),
        critic_privileged: bool = True,
        init_log_std: float = -0.5,
        obs_skip: bool = False,
        task_head: bool = False,
        task_input: bool = False,
        task_dim: int = 0,
    ):
        head = list(head)
        super().__init__(
            obs_dim, act_dim, privileged_dim, hidden_size=hidden_size, head=head,
            critic_privileged=critic_privileged, init_log_std=init_log_std,
            obs_skip=obs_skip, task_head=task_head, task_input=task_input, task_dim=task_dim,
        )
        if task_input and not (task_head and privileged_dim > 0):
            raise ValueError("task_input needs the task head (and dynamics features)")
        self.hidden_size = int(hidden_size)
        self.critic_privileged = bool(critic_privileged and privileged_dim > 0)
        # obs_skip: the heads also see the current observation, so the GRU need only carry
        # what memory adds (the dynamics), not relay the state it was just given.
        self.obs_skip = bool(obs_skip)
        # task_input: the heads see [observation, the task head's estimate], the input an
        # oracle's (or RMA teacher's) policy takes, so a trained one can be the start.
        self.task_input = bool(task_input)
        # what the task head estimates: the normalized dynamics features (task_dim 0) or a
        # teacher's task_dim-sized latent of them
        self.task_dim = int(task_dim) or privileged_dim
        self.obs_norm = RunningNorm(obs_dim)
        self.rew_norm = RunningNorm(1)
        self.priv_norm = RunningNorm(max(privileged_dim, 1))
        self.value_norm = RunningNorm(1)
        self.gru = nn.GRU(obs_dim + act_dim + 2, hidden_size)
        feat = hidden_size + (obs_dim if self.obs_skip else 0)
        if self.task_input:
            feat = obs_dim + self.task_dim
        self.actor = mlp([feat, *head, act_dim], out_gain=0.01)
        critic_in = feat + (privileged_dim if self.critic_privileged else 0)
        self.critic = mlp([critic_in, *head, 1], out_gain=1.0)
        self.log_std = _gaussian_head(act_dim, init_log_std)
        # task_head: a linear read-out of the normalized dynamics features from the GRU
        # state, trained as an auxiliary loss (task inference); inference uses it only
        # with task_input.
        self.task_head = nn.Linear(hidden_size, self.task_dim) if task_head else None

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return [(self.hidden_size,)]

    def _inputs(self, obs, prev_action, prev_reward, first):
        prev_action = prev_action * (1.0 - first)  # an episode start has no previous command
        prev_reward = self.rew_norm(prev_reward) * (1.0 - first)
        return torch.cat([self.obs_norm(obs), prev_action, prev_reward, first], -1)

    def _features(self, gru_out, obs):
        if self.task_input:
            return torch.cat([self.obs_norm(obs), self.task_head(gru_out)], -1)
        return torch.cat([gru_out, self.obs_norm(obs)], -1) if self.obs_skip else gru_out

    def sequence(self, obs, prev_action, prev_reward, first, h0):
        """Run the GRU over [T,B,*] inputs from state h0[B,H]: head features [T,B,F], hT."""
        out, h = self.gru(self._inputs(obs, prev_action, prev_reward, first), h0.unsqueeze(0))
        return self._features(out, obs), h.squeeze(0)

    def task_prediction(self, features):
        """The task head's estimate (of the normalized dynamics features or a latent)."""
        if self.task_input:
            return features[..., self.obs_dim :]
        return self.task_head(features[..., : self.hidden_size])

    def value_from_features(self, features, privileged):
        if self.critic_privileged:
            features = torch.cat([features, self.priv_norm(privileged)], -1)
        return self.critic(features).squeeze(-1)

    def forward(self, obs, prev_action, prev_reward, first, privileged, hidden):  # noqa: D102
        x = self._inputs(obs, prev_action, prev_reward, first).unsqueeze(0)
        out, h = self.gru(x, hidden.unsqueeze(0))
        action = torch.clamp(self.actor(self._features(out.squeeze(0), obs)), -1.0, 1.0)
        return action, h.squeeze(0)


class HistoryEncoder(nn.Module):
    """RMA adaptation module: per-step embedding, temporal 1-D convolutions, linear to z."""

    def __init__(self, entry_dim: int, history_len: int, latent_dim: int, channels: int = 32):
        super().__init__()
        self.embed = mlp([entry_dim, channels, channels], activation=nn.ELU)
        convs: list[nn.Module] = []
        length = history_len
        for kernel, stride in ((8, 4), (5, 1), (5, 1)):
            if (length - kernel) // stride + 1 < 1:
                continue
            convs += [nn.Conv1d(channels, channels, kernel, stride), nn.ELU()]
            length = (length - kernel) // stride + 1
        self.convs = nn.Sequential(*convs)
        self.out = nn.Linear(channels * length, latent_dim)

    def forward(self, history: torch.Tensor) -> torch.Tensor:  # history [B,H,F]
        x = self.embed(history).transpose(1, 2)  # [B,C,H]
        x = self.convs(x)
        return self.out(x.flatten(1))


@register_agent
class RMAAgent(Agent):
    """Rapid Motor Adaptation: policy pi(obs, z) with z from the true dynamics (teacher,
    via `encoder`) or regressed from the last H history entries (student, via `adapt`).

    A history entry is [normalized obs, previous applied command, first flag, valid]: the
    command is zeroed and `first` set on an episode's first step, so a reset is marked and
    never looks like a physical jump; `valid` distinguishes real entries from the zero
    padding of a fresh task. `forward` is the student (what is exported).
    """

    algo = "rma"

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        privileged_dim: int,
        latent_dim: int = 8,
        hidden: tuple[int, ...] | list[int] = (256, 256),
        encoder_hidden: tuple[int, ...] | list[int] = (64,),
        history_len: int = 40,
        adapt_channels: int = 32,
        init_log_std: float = -0.5,
        latent_smoothing: float = 0.0,
    ):
        hidden, encoder_hidden = list(hidden), list(encoder_hidden)
        super().__init__(
            obs_dim, act_dim, privileged_dim, latent_dim=latent_dim, hidden=hidden,
            encoder_hidden=encoder_hidden, history_len=history_len,
            adapt_channels=adapt_channels, init_log_std=init_log_std,
            latent_smoothing=latent_smoothing,
        )
        if privileged_dim < 1:
            raise ValueError("RMA needs oracle features (privileged_dim >= 1)")
        if not 0.0 <= latent_smoothing < 1.0:
            raise ValueError("latent_smoothing must lie in [0, 1)")
        self.latent_smoothing = float(latent_smoothing)
        self.history_len = int(history_len)
        self.latent_dim = int(latent_dim)
        self.entry_dim = obs_dim + act_dim + 2
        self.obs_norm = RunningNorm(obs_dim)
        self.priv_norm = RunningNorm(privileged_dim)
        self.value_norm = RunningNorm(1)
        self.encoder = mlp([privileged_dim, *encoder_hidden, latent_dim], activation=nn.ELU)
        self.adapt = HistoryEncoder(self.entry_dim, self.history_len, latent_dim, adapt_channels)
        self.actor = mlp([obs_dim + latent_dim, *hidden, act_dim], out_gain=0.01)
        self.critic = mlp([obs_dim + privileged_dim, *hidden, 1], out_gain=1.0)
        self.log_std = _gaussian_head(act_dim, init_log_std)

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        shapes = [(self.history_len, self.entry_dim)]
        if self.latent_smoothing:  # the running estimate of z and its weight
            shapes.append((self.latent_dim + 1,))
        return shapes

    def entry(self, obs, prev_action, first):
        """One history entry [B,F] for the current step."""
        return torch.cat(
            [self.obs_norm(obs), prev_action * (1.0 - first), first, torch.ones_like(first)], -1
        )

    def push(self, history, entry):
        """Slide the window: drop the oldest entry, append `entry`."""
        return torch.cat([history[:, 1:], entry.unsqueeze(1)], 1)

    def teacher_latent(self, privileged):
        return self.encoder(self.priv_norm(privileged))

    def actor_mean(self, obs, z):
        return self.actor(torch.cat([self.obs_norm(obs), z], -1))

    def value(self, obs, privileged):
        x = torch.cat([self.obs_norm(obs), self.priv_norm(privileged)], -1)
        return self.critic(x).squeeze(-1)

    def smooth(self, z, history, running):
        """Average the per-window estimates of z over time, each weighted by how full its
        window is, with old ones fading at rate `latent_smoothing` per step. Why: the
        dynamics persist across episodes, but one window of a settled arm shows little of
        them; the average keeps what the moving windows showed."""
        # the fraction of valid entries; the newest entry is always valid, so the clamp
        # only bounds arbitrary states (export's parity check feeds random ones)
        fill = history[:, :, -1].mean(1, keepdim=True).clamp(1.0 / self.history_len, 1.0)
        z_avg, weight = running[:, :-1], running[:, -1:]
        weight = (1.0 - self.latent_smoothing) * weight + fill
        z_avg = z_avg + fill / torch.maximum(weight, fill) * (z - z_avg)
        return z_avg, torch.cat([z_avg, weight], -1)

    def forward(self, obs, prev_action, prev_reward, first, privileged, history, *running):  # noqa: D102
        history = self.push(history, self.entry(obs, prev_action, first))
        z = self.adapt(history)
        if not self.latent_smoothing:
            return torch.clamp(self.actor_mean(obs, z), -1.0, 1.0), history
        z, running = self.smooth(z, history, running[0])
        return torch.clamp(self.actor_mean(obs, z), -1.0, 1.0), history, running


@register_agent
class RMATeacherAgent(RMAAgent):
    """The RMA teacher as a deployable agent (privileged input used): for diagnostics."""

    algo = "rma-teacher"

    @property
    def state_shapes(self) -> list[tuple[int, ...]]:
        return []

    def forward(self, obs, prev_action, prev_reward, first, privileged):  # noqa: D102
        return (torch.clamp(self.actor_mean(obs, self.teacher_latent(privileged)), -1.0, 1.0),)
