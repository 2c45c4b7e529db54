"""File names as printed: one line each, shown as they are written, never obeyed by the terminal.

A name can hold any byte but "/" and NUL: a newline in it splits a report line in two (`0.9999  ok.png` forged
on a line of its own), an ANSI escape restyles or clears the terminal, U+202E turns the rest of the line around.
"""

from __future__ import annotations

import os
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Controls, format characters (bidi overrides), lone surrogates (undecodable bytes) and line/paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable_name(name: str | os.PathLike[str]) -> str:
    """`name` with every character a terminal would act on written as a Python escape (\\n, \\x1b, \\u202e); a
    byte that is not UTF-8 (kept by Python as a surrogate) as \\xNN."""
    text = os.fspath(name)
    if text.isprintable():
        return text  # the common case: nothing to escape
    return "".join(_escaped(c) if unicodedata.category(c) in _ESCAPED_CATEGORIES else c for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
