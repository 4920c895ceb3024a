"""Range-ANS decoding of CompressAI's streams, in pure Python (no compiled extension).

The encoder writes with CompressAI's ``RansEncoder`` (a 64-bit rANS state, 32-bit
words, 16-bit probabilities, values outside a table's range escaped in 4-bit bypass
chunks).  The packaged decoder must run where CompressAI is not installed, so the
inverse lives here: the same arithmetic on Python integers, one symbol at a time.
A test decodes CompressAI-encoded streams with both and compares every value.

A corrupt stream can only give wrong values or raise ``ValueError``: every read is
bounds-checked.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right

PRECISION = 16  # probabilities are integers summing to 2**16
STATE_LOW = 1 << 31  # the state stays in [2**31, 2**63) between symbols
BYPASS_BITS = 4
BYPASS_MAX = (1 << BYPASS_BITS) - 1


def decode_with_indexes(data: bytes, indexes: list[int], cdfs: list[list[int]], cdf_lengths: list[int],
                        offsets: list[int]) -> list[int]:
    """The values coded in ``data``, symbol ``i`` with table ``indexes[i]`` (CompressAI's arguments)."""
    return RansStreamDecoder(data, cdfs, cdf_lengths, offsets).decode(indexes)


class RansStreamDecoder:
    """One stream decoded in pieces (an autoregressive model learns each piece's tables from the last)."""

    def __init__(self, data: bytes, cdfs: list[list[int]], cdf_lengths: list[int], offsets: list[int]):
        if len(data) % 4 or len(data) < 8:
            raise ValueError(f"rANS stream of {len(data)} bytes: not whole 32-bit words")
        self.words = array("I", data)
        if sys.byteorder == "big":
            self.words.byteswap()
        self.state, self.pos = self.words[0] | (self.words[1] << 32), 2
        self.tables = [(cdf, length, length - 2, offset) for cdf, length, offset in zip(cdfs, cdf_lengths, offsets)]

    def decode(self, indexes: list[int]) -> list[int]:
        """The next ``len(indexes)`` values, symbol ``i`` with table ``indexes[i]``."""
        words, state, pos, tables = self.words, self.state, self.pos, self.tables
        end = len(words)
        mask = (1 << PRECISION) - 1
        find = bisect_right
        out = []
        append = out.append
        for index in indexes:
            cdf, length, escape, offset = tables[index]
            slot = state & mask
            symbol = find(cdf, slot, 0, length) - 1
            start = cdf[symbol]
            state = (cdf[symbol + 1] - start) * (state >> PRECISION) + slot - start
            if state < STATE_LOW:
                if pos == end:
                    raise ValueError("rANS stream ends early")
                state = (state << 32) | words[pos]
                pos += 1
            if symbol == escape:  # the escape symbol: the value follows in bypass chunks
                symbol, state, pos = _bypass(words, state, pos, symbol)
            append(symbol + offset)
        self.state, self.pos = state, pos
        return out


def _bypass(words: array, state: int, pos: int, top: int) -> tuple[int, int, int]:
    def chunk() -> int:
        nonlocal state, pos
        value = state & BYPASS_MAX
        state >>= BYPASS_BITS
        if state < STATE_LOW:
            if pos == len(words):
                raise ValueError("rANS stream ends early in a bypass value")
            state, pos = (state << 32) | words[pos], pos + 1
        return value

    count = value = chunk()
    while value == BYPASS_MAX:
        value = chunk()
        count += value
    raw = 0
    for j in range(count):
        raw |= chunk() << (BYPASS_BITS * j)
    value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + top
    return value, state, pos
