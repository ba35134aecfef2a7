"""metabot: meta-train robot policies in randomized MuJoCo, export to ONNX, adapt online on a serial arm."""

__version__ = "0.1.0"
