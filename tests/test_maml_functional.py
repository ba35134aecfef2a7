"""Correctness of the gradient-based meta-learning machinery (issue 4)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from metabot.algos import gradient_functional as gf
from metabot.algos import maml_numpy_head as nh
from metabot.runtime import head as rh

ALL_KEYS = ("head.weight", "head.bias", "log_std")


def _linear_policy(obs_dim=3, act_dim=2, seed=0):
    torch.manual_seed(seed)
    model = gf.GaussianMLP(obs_dim, act_dim, hidden=()).double()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.5)
        model.head.bias.normal_(0, 0.5)
    return model, {k: v.detach().clone() for k, v in model.named_parameters()}


def _batch(model, params, n_tasks, n, obs_dim, act_dim, seed):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n_tasks, n, obs_dim, generator=g, dtype=torch.float64)
    actions = torch.randn(n_tasks, n, act_dim, generator=g, dtype=torch.float64)
    adv = torch.randn(n_tasks, n, generator=g, dtype=torch.float64)
    logp = torch.stack([gf.log_prob(model, params, obs[i], actions[i]) for i in range(n_tasks)])
    weights = torch.ones(n_tasks, n, dtype=torch.float64)
    weights[:, -3:] = 0.0  # padding must not count
    return {"obs": obs, "actions": actions, "adv": adv, "logp_old": logp, "weights": weights}


def _setup(seed=0, n_tasks=3):
    model, params = _linear_policy(seed=seed)
    pre = _batch(model, params, n_tasks, 12, 3, 2, seed + 1)
    post = _batch(model, params, n_tasks, 10, 3, 2, seed + 2)
    # The post batch was "sampled" by a different policy: shift its old log-probs a little.
    post["logp_old"] = post["logp_old"] + 0.05
    return model, params, pre, post


def _meta_grad(model, params, steps, pre, post, *, first_order, use_vmap=True, inner_steps=1):
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    steps = {k: v.clone().requires_grad_(True) for k, v in steps.items()}
    f = gf.meta_objective_fn(model, keys=ALL_KEYS, inner_steps=inner_steps,
                             first_order=first_order, clip=100.0)
    value = gf.meta_objective(f, params, steps, pre, post, use_vmap=use_vmap)
    grads = torch.autograd.grad(value, list(params.values()) + list(steps.values()))
    names = [f"p:{k}" for k in params] + [f"s:{k}" for k in steps]
    return value.detach(), dict(zip(names, grads, strict=True))


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_meta_gradient_matches_finite_differences(inner_steps):
    model, params, pre, post = _setup()
    steps = {k: torch.tensor(0.3, dtype=torch.float64) for k in ALL_KEYS}
    _, g = _meta_grad(model, params, steps, pre, post, first_order=False,
                      inner_steps=inner_steps)
    f = gf.meta_objective_fn(model, keys=ALL_KEYS, inner_steps=inner_steps,
                             first_order=False, clip=100.0)
    eps = 1e-6
    for k, p in params.items():
        flat = p.reshape(-1)
        for i in range(flat.numel()):
            plus = {kk: vv.clone() for kk, vv in params.items()}
            minus = {kk: vv.clone() for kk, vv in params.items()}
            plus[k].reshape(-1)[i] += eps
            minus[k].reshape(-1)[i] -= eps
            with torch.no_grad():
                fd = (gf.meta_objective(f, plus, steps, pre, post)
                      - gf.meta_objective(f, minus, steps, pre, post)) / (2 * eps)
            assert g[f"p:{k}"].reshape(-1)[i].item() == pytest.approx(fd.item(), abs=1e-7, rel=1e-5)


def test_first_and_second_order_agree_only_with_zero_step():
    model, params, pre, post = _setup(seed=3)
    zero = {k: torch.tensor(0.0, dtype=torch.float64) for k in ALL_KEYS}
    _, g2 = _meta_grad(model, params, zero, pre, post, first_order=False)
    _, g1 = _meta_grad(model, params, zero, pre, post, first_order=True)
    for k in params:
        torch.testing.assert_close(g1[f"p:{k}"], g2[f"p:{k}"], rtol=1e-12, atol=1e-12)
    # With a real step the second-order term is non-zero: the check above has teeth.
    step = {k: torch.tensor(0.5, dtype=torch.float64) for k in ALL_KEYS}
    _, g2 = _meta_grad(model, params, step, pre, post, first_order=False)
    _, g1 = _meta_grad(model, params, step, pre, post, first_order=True)
    diff = sum((g1[f"p:{k}"] - g2[f"p:{k}"]).abs().sum().item() for k in params)
    assert diff > 1e-4


def test_vmap_over_tasks_equals_loop():
    model, params, pre, post = _setup(seed=5, n_tasks=4)
    steps = {k: torch.full_like(params[k], 0.2) for k in ALL_KEYS}  # Meta-SGD shaped steps
    v1, g1 = _meta_grad(model, params, steps, pre, post, first_order=False, use_vmap=True)
    v2, g2 = _meta_grad(model, params, steps, pre, post, first_order=False, use_vmap=False)
    torch.testing.assert_close(v1, v2, rtol=1e-12, atol=1e-12)
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], rtol=1e-10, atol=1e-12)
    # Meta-SGD step sizes receive a real gradient.
    assert all(g1[f"s:{k}"].abs().sum() > 0 for k in ALL_KEYS)


def test_initial_policy_objective_is_the_per_task_surrogate_of_the_meta_parameters():
    model, params, pre, _ = _setup(seed=6, n_tasks=3)
    pre["logp_old"] = pre["logp_old"] - 0.3  # ratios of e^0.3 > 1 + clip: clipping matters
    value = gf.initial_policy_objective(model, params, pre, clip=0.2)
    by_hand = []
    for i in range(3):
        b = {k: v[i] for k, v in pre.items()}
        ratio = torch.exp(gf.log_prob(model, params, b["obs"], b["actions"]) - b["logp_old"])
        term = torch.minimum(ratio * b["adv"], ratio.clamp(0.8, 1.2) * b["adv"])
        by_hand.append((term * b["weights"]).sum() / b["weights"].sum())
    torch.testing.assert_close(value, torch.stack(by_hand).mean())


def test_reptile_update_equals_definition():
    model, params, pre, post = _setup(seed=7, n_tasks=3)
    steps = {k: torch.tensor(0.1, dtype=torch.float64) for k in ALL_KEYS}
    eps, lr, k_extra = 0.5, 0.05, 3
    phis = [
        gf.reptile_adapt(model, params, {k: v[i] for k, v in pre.items()},
                         {k: v[i] for k, v in post.items()}, steps, keys=ALL_KEYS,
                         extra_steps=k_extra, lr=lr, clip=0.2)
        for i in range(3)
    ]
    new = gf.reptile_update(params, phis, eps)
    # The definition by hand: SGD with torch.autograd on the task, then interpolate.
    expected = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(3):
        b0 = {k: v[i] for k, v in pre.items()}
        b1 = {k: v[i] for k, v in post.items()}
        phi = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        j = gf.inner_objective(model, phi, b0)
        gs = torch.autograd.grad(j, list(phi.values()))
        phi = {k: (v + 0.1 * g).detach() for (k, v), g in zip(phi.items(), gs, strict=True)}
        for _ in range(k_extra):
            phi = {k: v.requires_grad_(True) for k, v in phi.items()}
            j = gf.ppo_clip_objective(model, phi, b1, 0.2)
            gs = torch.autograd.grad(j, list(phi.values()))
            phi = {k: (v + lr * g).detach() for (k, v), g in zip(phi.items(), gs, strict=True)}
        for k in expected:
            expected[k] += (phi[k] - params[k]) / 3
    for k in params:
        torch.testing.assert_close(new[k], params[k] + eps * expected[k], rtol=1e-12, atol=1e-12)
        assert (new[k] - params[k]).abs().sum() > 0


@pytest.mark.parametrize("per_param", [False, True])
def test_closed_form_head_update_equals_autograd(per_param):
    torch.manual_seed(11)
    model = gf.GaussianMLP(5, 2, hidden=(8,)).double()
    with torch.no_grad():
        model.head.weight.normal_(0, 0.3)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    rng = np.random.default_rng(0)
    n = 40
    obs = rng.normal(size=(n, 5))
    actions = rng.normal(size=(n, 2))
    rewards = rng.normal(size=n)
    ends = np.zeros(n)
    ends[[14, 29, 39]] = 1.0
    adv = nh.advantages(obs, rewards, ends, gamma=0.9, lam=0.95)
    obs_t = torch.from_numpy(obs)
    act_t = torch.from_numpy(actions)
    if per_param:
        steps = {k: torch.from_numpy(rng.uniform(0.05, 0.5, size=params[k].shape))
                 for k in gf.HEAD_KEYS}
    else:
        steps = {k: torch.tensor(0.3, dtype=torch.float64) for k in gf.HEAD_KEYS}
    batch = {"obs": obs_t, "actions": act_t, "adv": torch.from_numpy(adv),
             "logp_old": gf.log_prob(model, params, obs_t, act_t),
             "weights": torch.ones(n, dtype=torch.float64)}
    adapted = gf.adapt(model, params, batch, steps, keys=gf.HEAD_KEYS, inner_steps=2)
    with torch.no_grad():
        feats = model.features(obs_t).numpy()
    w, b = nh.head_update(params["head.weight"].numpy(), params["head.bias"].numpy(),
                          params["log_std"].numpy(), feats, actions, adv,
                          steps["head.weight"].numpy(), steps["head.bias"].numpy(),
                          inner_steps=2)
    np.testing.assert_allclose(w, adapted["head.weight"].detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b, adapted["head.bias"].detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.abs(w - params["head.weight"].numpy()).sum() > 1e-3
    # Body and log-std untouched by head-only adaptation.
    torch.testing.assert_close(adapted["body.0.weight"], params["body.0.weight"])
    torch.testing.assert_close(adapted["log_std"], params["log_std"])


def test_returns_and_advantages_by_hand():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    ends = np.array([0, 1, 0, 1])
    np.testing.assert_allclose(rh.discounted_returns(r, ends, 0.5), [2.0, 2.0, 5.0, 4.0])
    np.testing.assert_allclose(rh.time_index(ends), [0, 1, 0, 1])
    v = np.array([0.5, 1.0, 2.0, 1.0])
    # delta = r + g V' - V; A = delta + g*lam*A'
    d = np.array([1 + 0.5 * 1.0 - 0.5, 2 - 1.0, 3 + 0.5 * 1.0 - 2.0, 4 - 1.0])
    expected = np.array([d[0] + 0.25 * d[1], d[1], d[2] + 0.25 * d[3], d[3]])
    np.testing.assert_allclose(rh.gae(r, v, ends, 0.5, 0.5), expected)
    adv = nh.advantages(np.zeros((4, 1)), r, ends, gamma=0.5, lam=1.0)
    assert adv.mean() == pytest.approx(0.0, abs=1e-12)
    assert adv.std() == pytest.approx(1.0, abs=1e-6)


def test_numpy_head_module_imports_without_torch():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'mujoco', 'gymnasium'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import metabot.algos.maml_numpy_head as m\n"
        "import numpy as np\n"
        "out = m.adapt_head({'head.weight': np.zeros((1, 2)), 'head.bias': np.zeros(1),"
        " 'log_std': np.zeros(1)}, {'obs': np.ones((3, 1)), 'features': np.ones((3, 2)),"
        " 'actions': np.ones((3, 1)), 'rewards': np.arange(3.0), 'ends': np.array([0, 0, 1])},"
        " {'gamma': 0.99, 'gae_lambda': 1.0, 'inner_steps': 1,"
        " 'step_sizes': {'head.weight': 0.1, 'head.bias': 0.1}})\n"
        "assert out['head.weight'].shape == (1, 2)\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
