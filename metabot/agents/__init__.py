"""Shipped pretrained arm6-reach artifacts (see docs/quickstart.md for the command that rebuilds them)."""
