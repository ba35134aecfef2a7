"""metabot.bench."""
