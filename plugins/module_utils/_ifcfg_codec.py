# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ifcfg codec: values and files read like NetworkManager, written so that bash and NetworkManager agree.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O of its own: the value codec (``unescape``/``escape``) and
the line model of a file (``parse_lines``/``render_lines``, ``parse``,
``read_files`` over a reader it is given). _ifcfg plans rewrites with it.

Reading follows the rules of NetworkManager's ifcfg-rh reader (shvar.c):
one ``NAME=VALUE`` per line, values with bash quoting (bare, '...', "..." with
backslash escapes, $'...' ANSI-C) that may be concatenated, an optional
trailing ``;`` and ``#`` comment after whitespace; anything that would need a
shell to evaluate (``$(``, unquoted ``|&()<>``, a second word) is invalid.

Writing follows NetworkManager's svEscape rules, which produce text that bash
(initscripts sources these files as root) reads back as the same value
without expanding or executing anything.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, overload

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import validate_ifname

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

# ---------------------------------------------------------------------------
# The value codec

# g_ascii_isspace(): space, \t, \n, \v, \f, \r.
_SPACE = frozenset(b" \t\n\v\f\r")
_OCTAL = frozenset(b"01234567")
_HEX = frozenset(b"0123456789abcdefABCDEF")

# Characters that need a backslash inside double quotes (for bash too).
_ESCAPE_IN_DQ = frozenset(b'"\\$`')
# What old NetworkManager versions also escaped inside double quotes.
_ESCAPE_IN_DQ_OLD = frozenset(b"\"\\$`'~")
# Characters that make bash see more than one plain word, or expand.
_NEEDS_QUOTES = frozenset(b" '~\t|&;()<>")
# Shell metacharacters that NetworkManager rejects when unquoted.
_UNQUOTED_META = frozenset(b"|&()<>")

_ANSI_SIMPLE = {
    ord("a"): 0x07,
    ord("b"): 0x08,
    ord("e"): 0x1B,
    ord("E"): 0x1B,
    ord("f"): 0x0C,
    ord("n"): 0x0A,
    ord("r"): 0x0D,
    ord("t"): 0x09,
    ord("v"): 0x0B,
    ord("?"): ord("?"),
    ord('"'): ord('"'),
    ord("\\"): ord("\\"),
    ord("'"): ord("'"),
}

_ANSI_WRITE = {
    0x08: b"\\b",
    0x0C: b"\\f",
    0x0A: b"\\n",
    0x0D: b"\\r",
    0x09: b"\\t",
    0x0B: b"\\v",
    ord("\\"): b"\\\\",
    ord('"'): b'\\"',
    ord("'"): b"\\'",
}


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _to_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@overload
def display(text: str) -> str: ...


@overload
def display(text: None) -> None: ...


@overload
def display(text: str | None) -> str | None: ...


def display(text: str | None) -> str | None:
    """Text for a task result: bytes that are not UTF-8 (kept as surrogates while editing) become U+FFFD."""
    return None if text is None else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _utf8_of_codepoint(code: int) -> bytes:
    """Encode a code point as GLib's g_unichar_to_utf8() does.

    Unlike Python's codec this accepts any 32-bit value, with the original
    UTF-8 scheme of up to six bytes, and encodes surrogates; $'\\U...' with
    such a value gives exactly these bytes in NetworkManager.
    """
    code &= 0xFFFFFFFF
    if code < 0x80:
        return bytes((code,))
    length, first = 6, 0xFC
    for size, lead, limit in ((2, 0xC0, 0x800), (3, 0xE0, 0x10000), (4, 0xF0, 0x200000), (5, 0xF8, 0x4000000)):
        if code < limit:
            length, first = size, lead
            break
    tail: list[int] = []
    while len(tail) < length - 1:
        tail.append(0x80 | (code & 0x3F))
        code >>= 6
    return bytes([(first | code) & 0xFF, *reversed(tail)])


def _looks_like_old_escape(raw: bytes) -> bool:
    """True for a value written by old NetworkManager versions.

    Those put the whole value in double quotes and also escaped ' and ~ with a
    backslash. Only a value that is exactly such a string is read the old way
    (backslash dropped before ' and ~); anything else is read like bash does.
    """
    if not raw or raw[0] != ord('"'):
        return False
    k = 1
    while k < len(raw):
        ch = raw[k]
        if ch not in _ESCAPE_IN_DQ_OLD:
            k += 1
            continue
        if ch == ord('"'):
            return k + 1 == len(raw)
        if ch != ord("\\"):
            return False
        k += 1
        if k >= len(raw) or raw[k] not in _ESCAPE_IN_DQ_OLD:
            return False
        k += 1
    return False


def _read_ansi_c(raw: bytes, i: int, out: bytearray) -> int | None:
    """Read a $'...' body starting after $'; return the index after the closing quote, or None."""
    n = len(raw)
    while True:
        if i >= n:
            return None  # unterminated
        ch = raw[i]
        if ch == ord("'"):
            return i + 1
        if ch != ord("\\"):
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            return None  # no line continuation
        esc = raw[i]
        if esc in _ANSI_SIMPLE:
            out.append(_ANSI_SIMPLE[esc])
            i += 1
        elif esc in _OCTAL:
            value = 0
            digits = 0
            while digits < 3 and i < n and raw[i] in _OCTAL:
                value = value * 8 + (raw[i] - 0x30)
                i += 1
                digits += 1
            out.append(value & 0xFF)  # like bash, \772 is cut to one byte
        elif esc in b"xuU":
            i += 1
            if i >= n or raw[i] not in _HEX:
                out += b"\\" + bytes((esc,))  # no digits: kept as written
                continue
            max_digits = {ord("x"): 2, ord("u"): 4, ord("U"): 8}[esc]
            value = 0
            digits = 0
            while digits < max_digits and i < n and raw[i] in _HEX:
                value = value * 16 + int(chr(raw[i]), 16)
                i += 1
                digits += 1
            if esc == ord("x"):
                out.append(value)
            else:
                out += _utf8_of_codepoint(value)
        else:
            # unknown escapes (\c, \8, ...) stay as written
            out += b"\\" + bytes((esc,))
            i += 1


def _only_a_comment_follows(raw: bytes, i: int) -> bool:
    """Whether the value may end at ``raw[i]`` (a blank or ';'): only blanks, at most one ';' and a '#' comment follow.

    "LANG=C ls" is rejected: a command after the assignment.
    """
    n = len(raw)
    semicolon = raw[i] == ord(";")
    j = i + 1
    while j < n:
        if raw[j] in _SPACE:
            j += 1
        elif raw[j] == ord(";") and not semicolon:
            semicolon = True
            j += 1
        else:
            break
    return j >= n or raw[j] == ord("#")


def _read_double_quoted(raw: bytes, i: int, out: bytearray) -> int | None:
    """Read a "..." body starting after the quote; return the index after the closing quote, or None.

    Inside double quotes the backslash is dropped only before the bytes of
    _ESCAPE_IN_DQ, as bash does; NetworkManager also drops it before a quote
    and a tilde in files its old writer wrote (_looks_like_old_escape). A
    dollar sign or a backquote would be an expansion: rejected.
    """
    n = len(raw)
    old_escape = None
    while True:
        if i >= n:
            return None
        ch = raw[i]
        if ch == ord('"'):
            return i + 1
        if ch in b"$`":
            return None  # would be an expansion in bash
        if ch == ord("\\"):
            i += 1
            if i >= n:
                return None
            nxt = raw[i]
            if nxt in b"'~":
                if old_escape is None:
                    old_escape = _looks_like_old_escape(raw)
                if not old_escape:
                    out.append(ord("\\"))
            elif nxt not in _ESCAPE_IN_DQ:  # before those the backslash is dropped
                out.append(ord("\\"))
        out.append(raw[i])
        i += 1


def _checked(value: bytes, check_utf8: bool) -> bytes | None:
    """With ``check_utf8`` the value if it is UTF-8 without NUL, else None; without it the value up to a NUL."""
    if check_utf8:
        if b"\0" in value:
            return None
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return value
    nul = value.find(b"\0")
    return value if nul < 0 else value[:nul]


def unescape_bytes(raw: bytes, check_utf8: bool = True) -> bytes | None:
    """Parse the right-hand side of ``NAME=`` (bytes) like NetworkManager.

    A decoder: one loop over the bytes, each quoted part read by its own
    reader, like the reader in NetworkManager's shvar.c that it follows.

    Returns the value as bytes, or None when NetworkManager rejects it as
    badly quoted. With ``check_utf8`` (NetworkManager's normal reading) a
    value that is not valid UTF-8 or holds a NUL is rejected too; without it
    a NUL ends the value, as it ends a C string.
    """
    out = bytearray()
    n = len(raw)
    i: int | None = 0
    while i is not None and i < n:
        ch = raw[i]
        if ch in _SPACE or ch == ord(";"):
            if not _only_a_comment_follows(raw, i):
                return None
            break
        if ch == ord("\\"):
            if i + 1 >= n:
                return None  # no line continuation
            out.append(raw[i + 1])
            i += 2
        elif ch == ord("'"):
            end = raw.find(b"'", i + 1)
            if end < 0:
                return None
            out += raw[i + 1 : end]
            i = end + 1
        elif ch == ord('"'):
            i = _read_double_quoted(raw, i + 1, out)
        elif ch == ord("$") and i + 1 < n and raw[i + 1] == ord("'"):
            i = _read_ansi_c(raw, i + 2, out)
        elif ch in _UNQUOTED_META:
            return None
        else:
            out.append(ch)
            i += 1
    if i is None:
        return None  # a quoted part was not closed, or held what NetworkManager refuses
    return _checked(bytes(out), check_utf8)


def unescape(raw: str, check_utf8: bool = True) -> str | None:
    """Text variant of :func:`unescape_bytes`; bytes that are not UTF-8 come back as surrogate escapes."""
    value = unescape_bytes(_to_bytes(raw), check_utf8)
    return None if value is None else _to_text(value)


def _escape_ansi_c(data: bytes) -> bytes:
    out = bytearray(b"$'")
    for ch in data:
        if ch in _ANSI_WRITE:
            out += _ANSI_WRITE[ch]
        elif ch < 0x20 or ch >= 0x7F:
            out += b"\\%03o" % ch
        else:
            out.append(ch)
    out.append(ord("'"))
    return bytes(out)


def escape_bytes(data: bytes) -> bytes:
    """Quote a value (bytes) with svEscape's rules; see :func:`escape`."""
    mangle = False
    quote = False
    ascii_only = True
    for ch in data:
        if ch in _ESCAPE_IN_DQ:
            mangle = True
        elif ch in _NEEDS_QUOTES:
            quote = True
        elif ch < 0x20 or ch == 0x7F:
            return _escape_ansi_c(data)
        elif ch > 0x7F:
            ascii_only = False
            quote = True
    if not ascii_only:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return _escape_ansi_c(data)
    if not mangle and not quote:
        return bytes(data)
    out = bytearray(b'"')
    for ch in data:
        if ch in _ESCAPE_IN_DQ:
            out.append(ord("\\"))
        out.append(ch)
    out.append(ord('"'))
    return bytes(out)


def escape(value: str) -> str:
    """Quote a value for the right-hand side of ``NAME=``.

    1. a control character (< 0x20, or 0x7f) or bytes that are not UTF-8:
       $'...' with \\b \\f \\n \\r \\t \\v \\\\ \\" \\' and \\NNN octal for the rest;
    2. else any of " \\ $ `: double quotes, those four backslash-escaped;
    3. else a space, ' ~ TAB | & ; ( ) < > or non-ASCII: double quotes as is;
    4. else bare.
    Both bash and NetworkManager read the result back as ``value``.
    """
    return _to_text(escape_bytes(_to_bytes(value)))


def bash_safe(raw: str, value: str) -> bool:
    """True when ``raw`` is a quoting of ``value`` that bash reads as NetworkManager does.

    Accepted: the svEscape form, 'value' and "value" where those quotes need
    no escapes, each optionally followed by blanks and a # comment. Any other
    spelling (an unquoted ~ or $, a legacy "\\~", a CR at the end, ...) may be
    read differently by bash, so the module rewrites it.
    """
    if unescape(raw) != value:
        return False
    forms = [escape(value)]
    plain = not any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0xDC80 <= ord(ch) <= 0xDCFF for ch in value)
    if plain and "'" not in value:
        forms.append("'%s'" % value)
    if plain and not any(ch in value for ch in '"\\$`'):
        forms.append('"%s"' % value)
    return any(raw == form or (raw.startswith(form) and re.fullmatch(r"[ \t]+(?:#[^\r\n]*)?", raw[len(form) :])) for form in forms)


# ---------------------------------------------------------------------------
# The line model of a file

_ASCII_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_ASCII_ALNUM = _ASCII_ALPHA | frozenset("0123456789")
_TEXT_SPACE = " \t\n\v\f\r"
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Line:
    """One line of a file: an assignment (``key`` set) or anything else."""

    __slots__ = ("key", "prefix", "raw", "text")

    def __init__(self, text: str, key: str | None = None, prefix: str = "", raw: str | None = None) -> None:
        self.text = text  # the line as read, without its newline
        self.key = key
        self.prefix = prefix  # blanks before the key
        self.raw = raw  # the right-hand side, as written

    @classmethod
    def parse(cls, text: str) -> Line:
        k = 0
        while k < len(text) and text[k] in _TEXT_SPACE:
            k += 1
        if k < len(text) and text[k] in _ASCII_ALPHA:
            e = k + 1
            while e < len(text) and text[e] in _ASCII_ALNUM:
                e += 1
            if e < len(text) and text[e] == "=":
                return cls(text, key=text[k:e], prefix=text[:k], raw=text[e + 1 :])
        return cls(text)

    @classmethod
    def assignment(cls, key: str, value: str) -> Line:
        raw = escape(value)
        return cls("%s=%s" % (key, raw), key=key, raw=raw)

    @property
    def value(self) -> str | None:
        """The value as NetworkManager reads it; None when it is badly quoted."""
        return unescape(self.raw) if self.key is not None and self.raw is not None else None

    def render(self) -> list[str]:
        """The line(s) NetworkManager's writer would produce for this line.

        Comments, blank lines and valid assignments stay as they are. A line
        that is neither is kept as a ``#NM: `` comment; a badly quoted
        assignment becomes ``KEY=`` followed by the original as a comment.
        Neither reader then sees anything but what NetworkManager saw.
        """
        if self.key is None:
            stripped = self.text.lstrip(_TEXT_SPACE)
            if not stripped or stripped.startswith("#"):
                return [self.text]
            return ["#NM: " + self.text]
        if self.value is None:
            return ["%s=" % self.key, "#NM: " + self.text]
        if not self.bash_reads_it():
            return ["#NM: " + self.text]
        return [self.text]

    def bash_reads_it(self) -> bool:
        """True when bash assigns this line's key the value NetworkManager reads, and runs nothing.

        bash takes only spaces and tabs as blanks before a name: behind
        ``\\v``, ``\\f`` or ``\\r`` the line is a command named after it. And a
        value that is not one of the safe spellings (bash_safe), such as an
        unquoted backtick or ``$(...)``, may run a command when initscripts
        sources the file.
        """
        return self.key is not None and self.raw is not None and not self.prefix.strip(" \t") and self.value is not None and bash_safe(self.raw, self.value)


def parse_lines(text: str) -> list[Line]:
    """Split file content (text) into Lines, as NetworkManager does."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return [Line.parse(piece) for piece in pieces]


def render_lines(lines: Iterable[Line]) -> str:
    out: list[str] = []
    for line in lines:
        out.extend(line.render())
    return "".join(piece + "\n" for piece in out)


def read_values(lines: Iterable[Line]) -> dict[str, str | None]:
    """{key: value} as NetworkManager reads the lines: last occurrence wins, None if badly quoted."""
    values: dict[str, str | None] = {}
    for line in lines:
        if line.key is not None:
            values.pop(line.key, None)
            values[line.key] = line.value
    return values


def parse(data: bytes | str) -> dict[str, str | None]:
    """Parse file content (bytes or text) into {key: value}; see :func:`read_values`."""
    if isinstance(data, bytes):
        data = _to_text(data)
    return read_values(parse_lines(data))


def read_files(config_dir: str, devices: Sequence[str], reader: Callable[[str], bytes | None]) -> dict[str, dict[str, Any]]:
    """What the ifcfg files of ``devices`` in ``config_dir`` say, as NetworkManager reads them.

    ``reader(path)`` returns the file's bytes or None when there is no file
    (_fileio.read_bytes). Returns {device: {path, exists, variables}};
    ``variables`` is {} for a missing file, and a badly quoted value reads as
    None. Every name is checked before any file is read.
    """
    if "\0" in config_dir:
        raise ModuleError("config_dir must not contain a NUL byte.")
    for device in devices:
        validate_ifname(device, "devices")
    found: dict[str, dict[str, Any]] = {}
    for device in devices:
        path = config_dir.rstrip("/") + "/ifcfg-" + device
        data = reader(path)
        variables = {} if data is None else {key: display(value) for key, value in parse(data).items()}
        found[device] = {"path": path, "exists": data is not None, "variables": variables}
    return found
