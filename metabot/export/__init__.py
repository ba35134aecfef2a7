"""metabot.export."""
