"""metabot.bridge."""
