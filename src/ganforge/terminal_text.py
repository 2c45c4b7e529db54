"""Text as a terminal or a log line shows it: one printable line, whatever bytes the file names in it hold.

A POSIX file name is bytes. Python decodes the bytes that are not UTF-8 to lone surrogates ("bad\\udcff.png"),
which no UTF-8 stream accepts (UnicodeEncodeError, a traceback where a message was due), and a name may hold a
newline or an escape sequence that splits a message in two or fakes a line of output. Both are written as
escapes, so the name stays recognisable and one message stays one line.
"""

from __future__ import annotations

import os

_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # how os.fsdecode carries the undecodable bytes 0x80-0xff


def terminal_safe(text: str | os.PathLike[str]) -> str:
    """`text` (or a path) with undecodable file-name bytes as \\xNN, and control and format characters (newline,
    tab, ESC, the bidi override U+202E that turns the rest of a line around) escaped."""
    text = os.fspath(text)
    if text.isprintable():
        return text
    return "".join(_shown(char) for char in text)


def _shown(char: str) -> str:
    if ord(char) in _SURROGATE_BYTES:
        return f"\\x{ord(char) - 0xDC00:02x}"
    if char.isprintable():
        return char
    return char.encode("unicode_escape").decode("ascii")  # "\n" -> "\\n", "\x1b" -> "\\x1b"


SHOWN_VALUE_CHARS = 80  # a hostile config.json's value may be megabytes: its message shows the start and the length


def shown_value(value: object, limit: int = SHOWN_VALUE_CHARS) -> str:
    """`repr(value)` for a message about a bad value from a file or a flag: at most `limit` characters of it, with
    its full length when cut, so a 10 MB string in config.json is still one short line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"
