"""Rebuild the robot description an artifact carries, for deploy (numpy only, no MuJoCo).

The artifact holds the full `metabot.sim.arm.ArmDescription` it was trained with (joint
names in command order, limits, home, stall torques, FK chain, tool offset), so the deploy
loop builds observations with `metabot.sim.arm.observe` exactly as the env did, even on a
machine without this arm's MJCF.
"""

from __future__ import annotations

from typing import Any

from metabot.errors import ArtifactError


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def arm_from_metadata(metadata: dict[str, Any]):
    """The artifact's `ArmDescription` (ArtifactError for a non-arm agent)."""
    from metabot.sim.arm import ArmDescription, ChainLink  # numpy + stdlib only

    robot = metadata.get("robot")
    if not robot or robot.get("kind") != "arm":
        raise ArtifactError(
            f"the artifact for task {metadata['task']['name']!r} carries no arm description"
        )
    fields = {k: _tuples(v) for k, v in robot["arm"].items() if k != "chain"}
    chain = tuple(
        ChainLink(**{k: _tuples(v) for k, v in link.items()}) for link in robot["arm"]["chain"]
    )
    return ArmDescription(**fields, chain=chain)
