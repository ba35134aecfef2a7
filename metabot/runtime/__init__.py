"""Robot-side runtime: load a verified ONNX artifact and act / adapt with numpy + onnxruntime.

Imports neither torch nor mujoco (a test enforces it), so a robot computer runs agents on
the core install alone.
"""

from metabot.runtime.agent import Agent, InputError, load
from metabot.runtime.artifact import read_artifact
from metabot.runtime.schema import FORMAT_VERSION

__all__ = ["Agent", "FORMAT_VERSION", "InputError", "load", "read_artifact"]
