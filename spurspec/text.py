"""Words for people: counts with the noun in the right number ("1 positive", "2 negatives"),
written once for every message, table and report. Reads and writes nothing."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`n` and `word`, the noun in the plural unless n is 1: plural(1, "run") is "1 run",
    plural(3, "run") "3 runs", plural(0, "box", "boxes") "0 boxes". Thousands get commas."""
    noun = word if n == 1 else (many or f"{word}s")
    return f"{n:,} {noun}"
