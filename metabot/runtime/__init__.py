"""metabot.runtime."""
