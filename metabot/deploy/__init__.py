"""metabot.deploy."""
