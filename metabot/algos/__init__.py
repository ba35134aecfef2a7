"""metabot.algos."""
