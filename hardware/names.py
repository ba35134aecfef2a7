"""The joint-names digest carried in HELLO_ACK: CRC-32C of the names joined by commas.

The host compares it with the joint names it expects, so a program written for one arm
refuses to drive another whose joints are ordered or named differently.
"""

from __future__ import annotations

from collections.abc import Sequence

from crc32c import crc32c


def names_digest(names: Sequence[str]) -> int:
    return crc32c(",".join(names).encode("utf-8"))
