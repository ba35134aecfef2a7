"""The gradient-based meta-learners as trainable algorithms: `metabot train --algo NAME`.

All five share one loop (metabot.algos.gradient_meta); they differ in what adapts and how
the meta-gradient flows (see that module and docs/gradient_meta.md).
"""

from __future__ import annotations

from metabot.algos.gradient_meta import GradientMetaLearner
from metabot.algos.registry import register


@register
class MAML(GradientMetaLearner):
    """All parameters adapt; second-order meta-gradient through the inner step."""

    name = "maml"


@register
class FOMAML(GradientMetaLearner):
    """All parameters adapt; the inner gradient is treated as a constant (first order)."""

    name = "fomaml"


@register
class Reptile(GradientMetaLearner):
    """theta += eps * mean over tasks of (task-adapted parameters - theta)."""

    name = "reptile"


@register
class MetaSGD(GradientMetaLearner):
    """MAML with one learned inner step size per parameter entry."""

    name = "metasgd"


@register
class ANIL(GradientMetaLearner):
    """Only the linear head adapts (closed-form on the robot); the body is meta-learned."""

    name = "anil"
