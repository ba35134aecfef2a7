"""`rma`: Rapid Motor Adaptation (Kumar et al. 2021), two phases in one run.

1. Teacher (first `teacher_fraction` of the steps): PPO trains the base policy
   pi(obs, z) with z = encoder(true normalized dynamics features), and the critic.
2. Student (the rest): pi and the encoder are frozen; the adaptation module regresses z
   from the last H history entries, on rollouts of the student itself (DAgger-style:
   the states visited are the ones the deployed student will visit). Rollouts hold
   several episodes per task with the history carried over, as on a robot.

With `teacher_run` (a finished `oracle` run) there is no teacher phase: the oracle's policy
IS the teacher, z is its normalized dynamics features (an identity encoder), and the whole
budget trains the student. The deployed policy is then the oracle's, so on a robot the
adaptive agent loses only what its estimate of the dynamics misses; a teacher of its own
ends up a different PPO solution, which on the mock robot costs more than the estimate does
(measured: docs/quickstart.md). This is UP-OSI's recipe (Yu et al. 2017) with RMA's student.

The exported agent is the student (`RMAAgent.forward`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metabot.algos.agents import Agent, RMAAgent
from metabot.algos.baselines import FeedForwardPPO, reset_seed, sample_batch
from metabot.algos.ppo import PPOConfig, gaussian_log_prob
from metabot.algos.registry import register
from metabot.algos.rollout import collect
from metabot.errors import ConfigError


@dataclass(frozen=True)
class RMAConfig(PPOConfig):
    hidden: tuple[int, ...] = (128, 128)
    latent_dim: int = 8
    encoder_hidden: tuple[int, ...] = (64,)
    history_len: int = 40
    adapt_channels: int = 32
    teacher_fraction: float = 0.75
    student_episodes: int = 3  # episodes per task in a student rollout (history carried)
    student_lr: float = 1e-3
    student_epochs: int = 4
    student_minibatch: int = 512
    student_explore: bool = True  # sample actions with the policy's std in student rollouts
    # > 0: the student's loss adds this weight times the squared difference between the
    # policy's action under the estimated z and under the true z, on the visited states, so
    # the estimate is pulled hardest where the policy is sensitive to it
    student_action_coef: float = 0.0
    # > 0: the deployed student acts on a running average of its z estimates, old ones
    # fading at this rate per step (inference only; training is unchanged). 0: each step's
    # own window estimate, as in RMA
    latent_smoothing: float = 0.0
    # a finished `oracle` run dir (relative to the working directory): its policy is the
    # teacher and every step trains the student; latent_dim, encoder_hidden, hidden,
    # init_log_std and teacher_fraction then come from (or do not apply to) that run
    teacher_run: str = ""

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.teacher_fraction < 1.0:
            raise ConfigError("config key 'teacher_fraction' must lie in (0, 1)")
        if self.history_len < 8:
            raise ConfigError("config key 'history_len' must be >= 8")
        if not self.student_action_coef >= 0:
            raise ConfigError("config key 'student_action_coef' must be >= 0")
        if not 0.0 <= self.latent_smoothing < 1.0:
            raise ConfigError("config key 'latent_smoothing' must lie in [0, 1)")


@register
class RMA(FeedForwardPPO):
    name = "rma"
    Config = RMAConfig

    def __init__(self, dist: Any, config: RMAConfig, seed: int, total_steps: int):
        super().__init__(dist, config, seed, total_steps)
        torch.manual_seed(self.seed)
        if config.teacher_run:
            self.agent = agent_from_oracle(config.teacher_run, dist, config)
        else:
            self.agent = RMAAgent(
                dist.obs_dim, dist.act_dim, dist.oracle_dim, latent_dim=config.latent_dim,
                hidden=list(config.hidden), encoder_hidden=list(config.encoder_hidden),
                history_len=config.history_len, adapt_channels=config.adapt_channels,
                init_log_std=config.init_log_std, latent_smoothing=config.latent_smoothing,
            )
        a = self.agent
        teacher_params = [*a.encoder.parameters(), *a.actor.parameters(),
                          *a.critic.parameters(), a.log_std]
        self.setup_optimizer(teacher_params)
        self.student_optimizer = torch.optim.Adam(a.adapt.parameters(), lr=config.student_lr)

    @property
    def phase(self) -> str:
        if self.config.teacher_run:
            return "student"
        limit = self.config.teacher_fraction * self.total_steps
        return "teacher" if self.env_steps < limit else "student"

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer, "student": self.student_optimizer}

    def final_agent(self) -> Agent:
        return self.agent

    # teacher policy for FeedForwardPPO
    def actor_mean(self, obs, privileged):
        return self.agent.actor_mean(obs, self.agent.teacher_latent(privileged))

    def value_norm(self, obs, privileged):
        return self.agent.value(obs, privileged)

    def train_iteration(self) -> dict[str, float]:
        if self.phase == "teacher":
            stats = self.ppo_iteration()
            stats["phase"] = 0.0
            return stats
        return self.student_iteration()

    # -- student ---------------------------------------------------------------------------
    def _student_step(self, obs, prev_action, prev_reward, first, privileged, history):
        agent = self.agent
        if history is None:
            history = agent.initial_state(obs.shape[0])[0]
        entry = agent.entry(obs, prev_action, first)
        history = agent.push(history, entry)
        mean = agent.actor_mean(obs, agent.adapt(history))
        action = mean
        if self.config.student_explore:
            action = mean + agent.log_std.exp() * torch.randn(mean.shape, generator=self.torch_gen)
        logp = gaussian_log_prob(mean, agent.log_std, action)
        return action, logp, torch.zeros(obs.shape[0]), history, {"entry": entry}

    def student_iteration(self) -> dict[str, float]:
        cfg, agent = self.config, self.agent
        agent.actor.requires_grad_(False)  # frozen: the action loss trains the module only
        envs = sample_batch(self, cfg.num_envs)
        steps = cfg.student_episodes * envs.episode_steps
        rollout, _ = collect(
            envs, self._student_step, steps, reset_seed(self), agent.act_dim
        )
        envs.close()
        H = agent.history_len
        entries = torch.as_tensor(rollout.extras["entry"]).transpose(0, 1)  # [N,T,F]
        padded = torch.cat([torch.zeros(envs.n, H - 1, entries.shape[-1]), entries], 1)
        windows = padded.unfold(1, H, 1).transpose(2, 3)  # [N,T,H,F]; window t ends at entry t
        with torch.no_grad():
            target = agent.teacher_latent(torch.as_tensor(envs.privileged))  # [N,Z]
        n_items = envs.n * steps
        losses: list[float] = []
        act_losses: list[float] = []
        for _ in range(cfg.student_epochs):
            perm = torch.randperm(n_items, generator=self.torch_gen)
            for start in range(0, n_items, cfg.student_minibatch):
                idx = perm[start : start + cfg.student_minibatch]
                env_i, t_i = idx // steps, idx % steps
                window = windows[env_i, t_i]
                pred = agent.adapt(window)
                loss = ((pred - target[env_i]) ** 2).mean()
                if cfg.student_action_coef > 0:  # the newest entry holds the normalized obs
                    obs_n = window[:, -1, : agent.obs_dim]
                    act = agent.actor(torch.cat([obs_n, pred], -1))
                    with torch.no_grad():
                        ref = agent.actor(torch.cat([obs_n, target[env_i]], -1))
                    act_mse = ((act - ref) ** 2).mean()
                    loss = loss + cfg.student_action_coef * act_mse
                    act_losses.append(act_mse.item())
                self.student_optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.adapt.parameters(), 1.0)
                self.student_optimizer.step()
                losses.append(loss.item())
        self.iteration += 1
        self.env_steps += steps * cfg.num_envs
        return {
            "return": float(np.mean(rollout.episode_returns)),
            "z_mse": _last_epoch_mean(losses, cfg.student_epochs),
            "z_var": float(target.var(0).mean()),
            **({"action_mse": _last_epoch_mean(act_losses, cfg.student_epochs)}
               if act_losses else {}),
            "phase": 1.0,
        }


def _last_epoch_mean(values: list[float], epochs: int) -> float:
    """Mean of the last epoch's minibatch losses (what the module fits after this update)."""
    return float(np.mean(values[-max(1, len(values) // epochs):]))


def agent_from_oracle(run_dir: str, dist: Any, config: RMAConfig) -> RMAAgent:
    """An RMA agent whose teacher is a trained oracle: the oracle's actor, critic, log-std and
    normalizers, z = the normalized dynamics features (the encoder an identity layer), and a
    fresh adaptation module. ConfigError names what does not fit."""
    from metabot.algos.runs import load_baseline_run

    oracle = load_baseline_run(run_dir, "teacher_run", "oracle", dist)
    hidden = list(oracle.spec()["kwargs"]["hidden"])
    P = dist.oracle_dim
    agent = RMAAgent(dist.obs_dim, dist.act_dim, P, latent_dim=P, hidden=hidden,
                     encoder_hidden=[], history_len=config.history_len,
                     adapt_channels=config.adapt_channels,
                     latent_smoothing=config.latent_smoothing)
    for name in ("actor", "critic", "obs_norm", "priv_norm", "value_norm"):
        getattr(agent, name).load_state_dict(getattr(oracle, name).state_dict())
    with torch.no_grad():
        agent.log_std.copy_(oracle.log_std)
        agent.encoder[0].weight.copy_(torch.eye(P))
        agent.encoder[0].bias.zero_()
    return agent
