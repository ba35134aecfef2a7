"""Task distributions over MuJoCo dynamics (installed as metabot.sim).

MJCF models, TOML randomization specs, envs and vector envs. This file imports nothing so that
the numpy-only `metabot.sim.arm` stays light for the robot computer.
"""
