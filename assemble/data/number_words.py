"""Integers as English words: 342 -> "three hundred forty-two" (the ``numbers`` task)."""

from __future__ import annotations

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ("", "thousand", "million", "billion")
LARGEST = 10 ** (3 * len(SCALES)) - 1


def _below_thousand(n: int) -> list[str]:
    words = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(TENS[tens] + (f"-{ONES[ones]}" if ones else ""))
    elif rest:
        words.append(ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """American English without "and": 1_000_001 -> "one million one", 40 -> "forty"."""
    if not 0 <= n <= LARGEST:
        raise ValueError(f"number_to_words takes 0..{LARGEST}, got {n}")
    if n == 0:
        return "zero"
    words: list[str] = []
    for power in range(len(SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words += _below_thousand(group) + ([SCALES[power]] if SCALES[power] else [])
    return " ".join(words)
