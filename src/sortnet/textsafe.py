"""Outside text (class names are folder names, file paths, upload names) made safe to print on a terminal.

A class folder named "\x1b[2J" or "cat\rdog" must not clear the screen or forge a line of output:
control characters (C0, DEL, C1), bidirectional overrides and line/paragraph separators are shown as
Python-style escapes. Apply it to each line of human-readable output, never to JSON or CSV (those
formats escape or quote for themselves). HTML output inserts names with textContent (serve/assets/*.js).

Names that are not valid UTF-8 (a folder named b"bad\xff\xfe") have ONE representation once read:
`utf8_name`, the name with each undecodable byte written as the 4 characters \xff (valid UTF-8, so every
JSON parser, the model file, the report and matplotlib take it). Class names are made so where they are
read (sortnet.data.walk); paths keep Python's surrogateescape form for opening files and are shown and
written to JSON (sortnet.jsonsafe) through utf8_name.

Usage:
    print(terminal_safe(f"{path}\t{label}"))     # keep the tab: escape the parts, not the separators
    print("\n".join(terminal_safe(line) for line in lines))
    label = utf8_name(os.path.basename(folder))  # "bad\\xff\\xfe"
"""
from __future__ import annotations

import unicodedata

# Format characters that reorder or hide text on a terminal (Trojan-source style); other Cf (emoji joiners) stay.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")
_SEPARATORS = frozenset("\u2028\u2029\x85")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(ch: str, keep: str) -> bool:
    return ch not in keep and (unicodedata.category(ch) == "Cc" or ch in _BIDI or ch in _SEPARATORS)


def has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def utf8_name(name: str) -> str:
    """name as valid UTF-8 text: bytes of a file-system name that are not UTF-8 (surrogateescape'd by Python)
    become backslash escapes, \\xff; valid names come back unchanged."""
    if not has_surrogates(name):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that stand for no byte (e.g. read from JSON): escaped as \udxxx
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def terminal_safe(text: object, keep: str = "") -> str:
    """str(text) with control, bidi-override and separator characters escaped; characters in `keep`
    (e.g. "\\t" for a line whose tabs are our own separators) are left alone."""
    s = utf8_name(str(text))  # bytes that are not UTF-8 as \\xff (printing a lone surrogate raises)
    if s.isprintable() and not any(ch in _BIDI for ch in s):
        return s  # fast path: the usual name or path
    return "".join(_escape(ch) if _unsafe(ch, keep) else ch for ch in s)
