"""metabot.evaluation."""
