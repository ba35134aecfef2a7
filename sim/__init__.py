"""Task distributions over MuJoCo dynamics: MJCF, randomization specs and envs (installed as metabot.sim)."""
