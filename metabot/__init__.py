"""metabot: meta-train robot policies in randomized MuJoCo, export to ONNX, adapt online.

The package root imports nothing heavy: robot-side code must load without torch or mujoco.
"""

__version__ = "0.1.0"
