"""metabot.commands."""
