"""Shipped pretrained arm6-reach artifacts.

See docs/quickstart.md for the one command that rebuilds them.
"""
