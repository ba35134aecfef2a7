"""metabot.algos: the PPO core, the meta-learners, agents and run directories.

`load_agent(run_dir)` is the entry point for export and evaluation; algorithm classes are
found through `metabot.algos.registry`. Importing this package does not import torch.
"""

from __future__ import annotations

from typing import Any


def load_agent(run_dir: Any) -> tuple[Any, dict[str, Any]]:
    """(agent module in eval mode, run_info) of a trained run; see docs/algorithms.md."""
    from metabot.algos.runs import load_agent as _load

    return _load(run_dir)


__all__ = ["load_agent"]
