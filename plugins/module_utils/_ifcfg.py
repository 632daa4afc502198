# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ifcfg files: read like NetworkManager, write so that bash and NetworkManager agree.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.

Pure code, no I/O: the value codec (``unescape``/``escape``), the line model of
a file, the rewrite plan, and the validation of the module's parameters.

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

import ipaddress
import re

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import normalize_mac, validate_ifname

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


def _to_bytes(text):
    return text.encode("utf-8", "surrogateescape")


def _to_text(data):
    return data.decode("utf-8", "surrogateescape")


def display(text):
    """Text for a task result: bytes that are not UTF-8 (kept as surrogates while editing) become U+FFFD."""
    return None if text is None else text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _utf8_of_codepoint(code):
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
    tail = []
    while len(tail) < length - 1:
        tail.append(0x80 | (code & 0x3F))
        code >>= 6
    return bytes([(first | code) & 0xFF, *reversed(tail)])


def _looks_like_old_escape(raw):
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


def _read_ansi_c(raw, i, out):
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


def unescape_bytes(raw, check_utf8=True):
    """Parse the right-hand side of ``NAME=`` (bytes) like NetworkManager.

    Returns the value as bytes, or None when NetworkManager rejects it as
    badly quoted. With ``check_utf8`` (NetworkManager's normal reading) a
    value that is not valid UTF-8 or holds a NUL is rejected too; without it
    a NUL ends the value, as it ends a C string.
    """
    out = bytearray()
    n = len(raw)
    i = 0
    old_escape = None
    while i < n:
        ch = raw[i]
        if ch in _SPACE or ch == ord(";"):
            # The value ends here. What follows may only be whitespace, at
            # most one ';' and a '#' comment; "LANG=C ls" is rejected.
            semicolon = ch == ord(";")
            j = i + 1
            while j < n:
                if raw[j] in _SPACE:
                    j += 1
                elif raw[j] == ord(";") and not semicolon:
                    semicolon = True
                    j += 1
                else:
                    break
            if j < n and raw[j] != ord("#"):
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
            i += 1
            while True:
                if i >= n:
                    return None
                ch = raw[i]
                if ch == ord('"'):
                    i += 1
                    break
                if ch in b"$`":
                    return None  # would be an expansion in bash
                if ch == ord("\\"):
                    i += 1
                    if i >= n:
                        return None
                    nxt = raw[i]
                    if nxt in _ESCAPE_IN_DQ:
                        pass  # the backslash is dropped
                    elif nxt in b"'~":
                        if old_escape is None:
                            old_escape = _looks_like_old_escape(raw)
                        if not old_escape:
                            out.append(ord("\\"))
                    else:
                        out.append(ord("\\"))
                out.append(raw[i])
                i += 1
        elif ch == ord("$") and i + 1 < n and raw[i + 1] == ord("'"):
            i = _read_ansi_c(raw, i + 2, out)
            if i is None:
                return None
        elif ch in _UNQUOTED_META:
            return None
        else:
            out.append(ch)
            i += 1
    result = bytes(out)
    if check_utf8:
        if b"\0" in result:
            return None
        try:
            result.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return result
    nul = result.find(b"\0")
    return result if nul < 0 else result[:nul]


def unescape(raw, check_utf8=True):
    """Text variant of :func:`unescape_bytes`; bytes that are not UTF-8 come back as surrogate escapes."""
    value = unescape_bytes(_to_bytes(raw), check_utf8)
    return None if value is None else _to_text(value)


def _escape_ansi_c(data):
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


def escape_bytes(data):
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


def escape(value):
    """Quote a value for the right-hand side of ``NAME=``.

    1. a control character (< 0x20, or 0x7f) or bytes that are not UTF-8:
       $'...' with \\b \\f \\n \\r \\t \\v \\\\ \\" \\' and \\NNN octal for the rest;
    2. else any of " \\ $ `: double quotes, those four backslash-escaped;
    3. else a space, ' ~ TAB | & ; ( ) < > or non-ASCII: double quotes as is;
    4. else bare.
    Both bash and NetworkManager read the result back as ``value``.
    """
    return _to_text(escape_bytes(_to_bytes(value)))


def bash_safe(raw, value):
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

    def __init__(self, text, key=None, prefix="", raw=None):
        self.text = text  # the line as read, without its newline
        self.key = key
        self.prefix = prefix  # blanks before the key
        self.raw = raw  # the right-hand side, as written

    @classmethod
    def parse(cls, text):
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
    def assignment(cls, key, value):
        raw = escape(value)
        return cls("%s=%s" % (key, raw), key=key, raw=raw)

    @property
    def value(self):
        """The value as NetworkManager reads it; None when it is badly quoted."""
        return unescape(self.raw) if self.key is not None else None

    def render(self):
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

    def bash_reads_it(self):
        """True when bash assigns this line's key the value NetworkManager reads, and runs nothing.

        bash takes only spaces and tabs as blanks before a name: behind
        ``\\v``, ``\\f`` or ``\\r`` the line is a command named after it. And a
        value that is not one of the safe spellings (bash_safe), such as an
        unquoted backtick or ``$(...)``, may run a command when initscripts
        sources the file.
        """
        return self.key is not None and not self.prefix.strip(" \t") and self.value is not None and bash_safe(self.raw, self.value)


def parse_lines(text):
    """Split file content (text) into Lines, as NetworkManager does."""
    pieces = text.split("\n")
    if pieces and pieces[-1] == "":
        pieces.pop()
    return [Line.parse(piece) for piece in pieces]


def render_lines(lines):
    out = []
    for line in lines:
        out.extend(line.render())
    return "".join(piece + "\n" for piece in out)


def read_values(lines):
    """{key: value} as NetworkManager reads the lines: last occurrence wins, None if badly quoted."""
    values = {}
    for line in lines:
        if line.key is not None:
            values.pop(line.key, None)
            values[line.key] = line.value
    return values


def parse(data):
    """Parse file content (bytes or text) into {key: value}; see :func:`read_values`."""
    if isinstance(data, bytes):
        data = _to_text(data)
    return read_values(parse_lines(data))


def read_files(config_dir, devices, reader):
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
    found = {}
    for device in devices:
        path = config_dir.rstrip("/") + "/ifcfg-" + device
        data = reader(path)
        variables = {} if data is None else {key: display(value) for key, value in parse(data).items()}
        found[device] = {"path": path, "exists": data is not None, "variables": variables}
    return found

# ---------------------------------------------------------------------------
# The rewrite plan


class Change:
    """One key change: ``action`` is add, set or remove."""

    __slots__ = ("action", "after", "before", "key")

    def __init__(self, key, action, before=None, after=None):
        self.key = key
        self.action = action
        self.before = before
        self.after = after

    def as_dict(self):
        return {"key": self.key, "action": self.action, "before": self.before, "after": self.after}


class Plan:
    """What a rewrite does: the key changes, the lines it comments out, the new content."""

    def __init__(self, before, after, changes, commented, values):
        self.before = before  # text or None (no file)
        self.after = after  # text or None (file removed)
        self.changes = changes
        self.commented = commented  # original text of lines kept as #NM: comments
        self.values = values  # {key: value} NetworkManager reads after the change

    @property
    def changed(self):
        return self.before != self.after

    @property
    def changed_keys(self):
        keys = []
        for change in self.changes:
            if change.key not in keys:
                keys.append(change.key)
        return keys


def plan_rewrite(before, desired, purge=False):
    """Plan the new content of a file.

    ``before``: the current content as text, or None when there is no file.
    ``desired``: {key: value}, in the order new keys are appended; a value of
    None removes the key. ``purge``: remove every other key as well.

    A key whose value already reads the same in NetworkManager and bash keeps
    its line untouched. Otherwise its last occurrence gets the new value (the
    earlier, shadowed ones go), or it is appended at the end. Comments, blank
    lines, other keys and their order stay. If the file is written, lines
    that neither NetworkManager nor bash can agree on are commented out as
    NetworkManager does (``#NM: ``); their presence alone also makes the
    file be rewritten, since bash may read the managed keys differently then.
    """
    lines = parse_lines(before) if before is not None else []
    changes = []
    removed = set()
    for key, value in desired.items():
        positions = [i for i, line in enumerate(lines) if line.key == key]
        if value is None:
            if positions:
                changes.append(Change(key, "remove", before=lines[positions[-1]].value))
                removed.update(positions)
            continue
        if not positions:
            lines.append(Line.assignment(key, value))
            changes.append(Change(key, "add", after=value))
            continue
        last = lines[positions[-1]]
        if len(positions) == 1 and last.value == value and last.bash_reads_it():
            continue
        removed.update(positions[:-1])
        lines[positions[-1]] = Line.assignment(key, value)
        changes.append(Change(key, "set", before=last.value, after=value))
    if purge:
        for i, line in enumerate(lines):
            if line.key is not None and line.key not in desired and i not in removed:
                # one change per key, reported for its last occurrence
                others = [j for j, other in enumerate(lines) if other.key == line.key]
                if i == others[-1]:
                    changes.append(Change(line.key, "remove", before=line.value))
                removed.add(i)
    kept = [line for i, line in enumerate(lines) if i not in removed]
    commented = [line.text for line in kept if line.render() != [line.text]]
    after = before if before is not None and not changes and not commented else render_lines(kept)
    return Plan(before, after, changes, commented, read_values(kept))


def plan_remove(before):
    """Plan the removal of a file (state=absent)."""
    if before is None:
        return Plan(None, None, [], [], {})
    lines = parse_lines(before)
    changes = [Change(key, "remove", before=value) for key, value in read_values(lines).items()]
    return Plan(before, None, changes, [], {})


# ---------------------------------------------------------------------------
# Parameters -> desired keys, all validated up front

TYPES = {
    "bridge": "Bridge",
    "ethernet": "Ethernet",
    "tap": "Tap",
    "vlan": "Vlan",
    "bond": "Bond",
    "team": "Team",
    "infiniband": "InfiniBand",
}

# Keys that change the shell which sources the file (initscripts, as root,
# with set -a, which exports every assignment to every later command) or
# that bash refuses to assign; never written from settings. Besides bash's
# own variables: what the C library, the dynamic loader, the resolver and
# the interpreters initscripts may start read from the environment.
_SHELL_KEYS = frozenset(
    (
        # bash
        "PATH", "IFS", "ENV", "BASH_ENV", "CDPATH", "GLOBIGNORE", "SHELLOPTS", "BASHOPTS", "PS1", "PS2", "PS3", "PS4",
        "PROMPT_COMMAND", "HOME", "SHELL", "OPTIND", "OPTARG", "OPTERR", "UID", "EUID", "PPID", "GROUPS", "FUNCNEST",
        "TIMEFORMAT", "EXECIGNORE", "FIGNORE", "INPUTRC", "HISTFILE", "HISTFILESIZE", "HISTSIZE", "HISTCONTROL", "HISTIGNORE",
        "POSIXLY_CORRECT", "TMOUT", "HOSTFILE", "HOSTNAME", "HOSTTYPE", "MACHTYPE", "OSTYPE", "SHLVL", "RANDOM", "SECONDS",
        "LINENO", "COLUMNS", "LINES", "PWD", "OLDPWD", "COMP_WORDBREAKS", "READLINE_LINE", "EPOCHREALTIME", "SRANDOM",
        "MAIL", "MAILPATH", "MAILCHECK", "TERM", "TERMINFO", "TERMCAP", "TMPDIR", "USER", "LOGNAME",
        # C library, locale and time zone
        "LANG", "LANGUAGE", "NLSPATH", "LOCPATH", "GLIBC_TUNABLES", "TZ", "TZDIR", "GETCONF_DIR", "MSGVERB", "SEV_LEVEL",
        "CHARSET", "RESOLV_HOST_CONF",
        # resolver
        "HOSTALIASES", "RES_OPTIONS", "LOCALDOMAIN", "RESOLV_MULTI", "RESOLV_REORDER", "RESOLV_SPOOF_CHECK", "RESOLV_ADD_TRIM_DOMAINS",
        "RESOLV_OVERRIDE_TRIM_DOMAINS",
        # interpreters and tools initscripts or its hooks may start
        "PERL5LIB", "PERLLIB", "PERL5OPT", "PERL5DB", "PERLIO", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "TCLLIBPATH",
        "GIT_EXEC_PATH", "EDITOR", "VISUAL", "PAGER", "SSL_CERT_FILE", "SSL_CERT_DIR", "OPENSSL_CONF", "OPENSSL_ENGINES",
        "SYSTEMD_PAGER", "SYSTEMD_EDITOR", "SYSTEMD_LOG_LEVEL", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS",
        "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_DIRS", "XDG_RUNTIME_DIR", "NOTIFY_SOCKET", "http_proxy", "https_proxy",
        "HTTP_PROXY", "HTTPS_PROXY", "ftp_proxy", "no_proxy", "ALL_PROXY", "all_proxy",
    )
)
# Whole families: the loader (LD_), bash (BASH), locale (LC_), malloc, iconv,
# Python, Perl, Ruby, Lua, Java, Node, glibc's own (GLIBC_, GCONV_, NSS_),
# SSL/TLS libraries and the resolver.
_SHELL_KEY_PREFIXES = (
    "LD_", "BASH", "LC_", "MALLOC_", "GCONV_", "GLIBC_", "NSS_", "PYTHON", "PERL", "RUBY", "LUA_", "JAVA_", "_JAVA", "JDK_",
    "NODE_", "SSL", "OPENSSL", "GNUTLS", "GIO_", "GTK_", "DBUS_", "SYSTEMD_", "RES_", "RESOLV_",
)

# A bridge's forward delay is a u32 of centiseconds in the kernel.
_DELAY_MAX = (2**32 - 1) // 100
_IP_FAMILY_RE = re.compile(r"(?:IPADDR|PREFIX|NETMASK)[0-9]*\Z")
_DNS_RE = re.compile(r"DNS[0-9]+\Z")
_PORT_FORBIDDEN_RE = re.compile(r"(?:IPADDR|PREFIX|NETMASK|GATEWAY)[0-9]*\Z|DNS[0-9]+\Z|IPV6ADDR.*\Z|IPV6_DEFAULTGW\Z")
_BRIDGING_KEY_RE = re.compile(r"[a-z_][a-z0-9_]*\Z")
_BRIDGING_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,+-]+\Z")


def yes_no(flag):
    return "yes" if flag else "no"


def validate_key(key, where="settings"):
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ModuleError("%s: %r is not a valid key name; use letters, digits and _, not starting with a digit." % (where, key))
    if key in _SHELL_KEYS or key.startswith(_SHELL_KEY_PREFIXES):
        raise ModuleError(
            "%s: %s is a shell or loader variable; initscripts sources ifcfg files as root with set -a, "
            "so setting it would change how every later command runs. Remove it." % (where, key)
        )
    return key


def validate_value(value, where):
    if "\0" in value:
        raise ModuleError("%s: the value contains a NUL byte, which no ifcfg reader can represent." % where)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ModuleError("%s: the value is not valid Unicode text (%s)." % (where, exc.reason)) from exc
    return value


def _ifcfg_mac(mac, option):
    """A unicast MAC written as given: colons only, no surrounding space (the file keeps the user's text)."""
    normalize_mac(mac, option, separators=":", strip=False)
    return mac


def validate_address(text):
    """An IPv4 host address with prefix length, like 198.18.5.10/24."""
    if isinstance(text, str) and ":" in text:
        raise ModuleError(
            "addresses: %r is an IPv6 address; addresses takes IPv4 only. Set IPv6 with settings (IPV6INIT: true, IPV6ADDR: ...)." % (text,)
        )
    match = re.fullmatch(r"([0-9.]+)/([0-9]{1,2})", text.strip()) if isinstance(text, str) else None
    if not match:
        raise ModuleError("addresses: %r is not an IPv4 address with a prefix length, like 198.18.5.10/24." % (text,))
    try:
        address = ipaddress.IPv4Address(match.group(1))
    except ValueError as exc:
        raise ModuleError("addresses: %r is not a valid IPv4 address: %s." % (text, exc)) from exc
    prefix = int(match.group(2))
    if not 1 <= prefix <= 32:
        raise ModuleError("addresses: %r has prefix length %d; it must be 1 to 32." % (text, prefix))
    iface = ipaddress.IPv4Interface("%s/%d" % (address, prefix))
    if address.is_multicast or address.is_unspecified or address.is_loopback or address == ipaddress.IPv4Address("255.255.255.255"):
        raise ModuleError("addresses: %s cannot be an interface address (multicast, unspecified, loopback or broadcast)." % text)
    if prefix <= 30 and address in (iface.network.network_address, iface.network.broadcast_address):
        which = "network" if address == iface.network.network_address else "broadcast"
        raise ModuleError("addresses: %s is the %s address of %s; give a host address." % (text, which, iface.network))
    return iface


def validate_gateway(text):
    try:
        gateway = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ModuleError("gateway %r is not an IPv4 address: %s." % (text, exc)) from exc
    if gateway.is_multicast or gateway.is_unspecified or gateway.is_loopback or gateway == ipaddress.IPv4Address("255.255.255.255"):
        raise ModuleError("gateway %s cannot be a gateway (multicast, unspecified, loopback or broadcast)." % gateway)
    return gateway


def validate_dns(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise ModuleError("dns: %r is not an IP address: %s." % (text, exc)) from exc


def _setting_text(key, value):
    where = "settings.%s" % key
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return validate_value(value, where)
    raise ModuleError("%s: give a string, number or boolean (or null to remove the key), not %s." % (where, type(value).__name__))


def _bridging_opts_text(opts):
    words = []
    for key, value in opts.items():
        if not isinstance(key, str) or not _BRIDGING_KEY_RE.match(key):
            raise ModuleError("bridging_opts: %r is not a bridge option name (sysfs names like priority, hairpin_mode)." % (key,))
        if isinstance(value, bool):
            value = "1" if value else "0"
        elif isinstance(value, int):
            value = str(value)
        if not isinstance(value, str) or not _BRIDGING_VALUE_RE.match(value):
            raise ModuleError(
                "bridging_opts.%s: %r is not a valid value; initscripts splits BRIDGING_OPTS on blanks and writes each "
                "value to sysfs unquoted, so use only letters, digits and _ . : , + -." % (key, value)
            )
        words.append("%s=%s" % (key, value))
    return " ".join(words)


class Request:
    """The validated parameters: file path, desired keys, purge, managed key families, warnings."""

    def __init__(self, path, desired, purge=False, families=(), warnings=()):
        self.path = path
        self.desired = desired  # {key: value or None to remove}, in append order
        self.purge = purge
        self.families = list(families)  # regexes: keys in the file that match and are not desired go
        self.warnings = list(warnings)


def build_request(params):
    """Validate the module parameters and build the desired {key: value}.

    Raises ModuleError for the first problem; nothing has been read or written then.
    """
    device = validate_ifname(params.get("device"), "device")
    config_dir = params.get("config_dir") or "/etc/sysconfig/network-scripts"
    if "\0" in config_dir:
        raise ModuleError("config_dir must not contain a NUL byte.")
    path = config_dir.rstrip("/") + "/ifcfg-" + device
    if params.get("state", "present") == "absent":
        return Request(path, {})

    warnings = []
    kind = params.get("type")
    bridge = params.get("bridge")
    bootproto = params.get("bootproto")
    addresses = params.get("addresses")
    gateway = params.get("gateway")
    dns = params.get("dns")
    settings = params.get("settings") or {}

    if kind is not None and kind not in TYPES:
        raise ModuleError("type %r is not one of %s." % (kind, ", ".join(sorted(TYPES))))
    if bridge is not None:
        validate_ifname(bridge, "bridge")
        if bridge == device:
            raise ModuleError("bridge %s names the device itself; a port must name another interface, the bridge it joins." % bridge)
        if kind == "bridge":
            raise ModuleError("%s is a bridge (type: bridge) and cannot be a port of bridge %s; Linux does not nest bridges." % (device, bridge))
        ip_options = []
        if addresses:
            ip_options.append("addresses")
        if gateway:
            ip_options.append("gateway")
        if dns:
            ip_options.append("dns")
        if bootproto in ("dhcp", "static"):
            ip_options.append("bootproto: %s" % bootproto)
        ip_options += ["settings.%s" % key for key in settings if isinstance(key, str) and _PORT_FORBIDDEN_RE.match(key) and settings[key] is not None]
        if ip_options:
            raise ModuleError(
                "%s is a port of bridge %s (BRIDGE=%s): initscripts ignores IP settings on a bridge port, so %s would "
                "have no effect. Put them in the bridge's own ifcfg (device: %s) and use bootproto: none here."
                % (device, bridge, bridge, ", ".join(ip_options), bridge)
            )
    stp = params.get("stp")
    delay = params.get("delay")
    bridge_only = [name for name, given in (("stp", stp is not None), ("delay", delay is not None)) if given]
    if bridge_only and (bridge is not None or (kind is not None and kind != "bridge")):
        raise ModuleError("%s applies to a bridge (type: bridge), not to %s." % (" and ".join(bridge_only), "a bridge port" if bridge else "type %s" % kind))
    if delay is not None:
        if not 0 <= delay <= _DELAY_MAX:
            raise ModuleError("delay must be 0 or more seconds, at most %d (what the kernel can hold), not %d." % (_DELAY_MAX, delay))
        if stp and not 2 <= delay <= 30:
            raise ModuleError("delay %d is out of range: with stp: true the kernel accepts a forward delay of 2 to 30 seconds." % delay)

    ifaces = [validate_address(text) for text in addresses] if addresses else []
    if len({str(iface.ip) for iface in ifaces}) != len(ifaces):
        raise ModuleError("addresses lists the same address twice.")
    if bootproto == "static" and not ifaces and not any(isinstance(k, str) and re.match(r"IPADDR[0-9]*\Z", k) and settings[k] is not None for k in settings):
        raise ModuleError("bootproto: static needs an address; give addresses, like [198.18.5.10/24].")
    gateway_ip = validate_gateway(gateway) if gateway else None
    if gateway_ip is not None and ifaces and not any(gateway_ip in iface.network for iface in ifaces):
        warnings.append("gateway %s is not in the subnet of any of the addresses; initscripts adds the route anyway, but check it." % gateway_ip)
    servers = [validate_dns(text) for text in dns] if dns else []

    desired = {"DEVICE": device}
    if kind is not None:
        desired["TYPE"] = TYPES[kind]
    if bridge is not None:
        desired["BRIDGE"] = bridge
    if bootproto is not None:
        desired["BOOTPROTO"] = bootproto
    if params.get("hwaddr") is not None:
        desired["HWADDR"] = _ifcfg_mac(params["hwaddr"], "hwaddr")
    if params.get("macaddr") is not None:
        desired["MACADDR"] = _ifcfg_mac(params["macaddr"], "macaddr")
    if len(ifaces) == 1:
        desired["IPADDR"] = str(ifaces[0].ip)
        desired["PREFIX"] = str(ifaces[0].network.prefixlen)
    else:
        for index, iface in enumerate(ifaces):
            desired["IPADDR%d" % index] = str(iface.ip)
            desired["PREFIX%d" % index] = str(iface.network.prefixlen)
    if gateway_ip is not None:
        desired["GATEWAY"] = str(gateway_ip)
    for index, server in enumerate(servers, start=1):
        desired["DNS%d" % index] = str(server)
    for option, key in (("onboot", "ONBOOT"), ("nm_controlled", "NM_CONTROLLED"), ("userctl", "USERCTL"), ("peerdns", "PEERDNS"), ("peerntp", "PEERNTP")):
        if params.get(option) is not None:
            desired[key] = yes_no(params[option])
    if stp is not None:
        desired["STP"] = yes_no(stp)
    if delay is not None:
        desired["DELAY"] = str(delay)
    bridging_opts = params.get("bridging_opts")
    if bridging_opts is not None:
        desired["BRIDGING_OPTS"] = _bridging_opts_text(bridging_opts) if bridging_opts else None

    from_options = set(desired)
    families = []
    if addresses is not None:
        families.append((_IP_FAMILY_RE, "addresses"))
    if dns is not None:
        families.append((_DNS_RE, "dns"))
    for key, value in settings.items():
        validate_key(key)
        if key in from_options:
            raise ModuleError("settings.%s: %s is written from an option of this module; set it there, not in settings." % (key, key))
        for regex, option in families:
            if regex.match(key):
                raise ModuleError("settings.%s: the %s option manages all %s keys; set it there, not in settings." % (key, option, key.rstrip("0123456789")))
        desired[key] = None if value is None else _setting_text(key, value)
    return Request(path, desired, bool(params.get("purge")), [regex for regex, _option in families], warnings)


def stale_port_keys(request, current_keys):
    """IP keys left in a bridge port's file, which initscripts ignores."""
    if "BRIDGE" not in request.desired or request.purge:
        return []
    return [key for key in current_keys if _PORT_FORBIDDEN_RE.match(key) and key not in request.desired]


def plan(before, request):
    """The planning step for state=present: clean up managed key families, then plan the rewrite.

    Returns (Plan, warnings).
    """
    current_keys = list(parse(before)) if before is not None else []
    desired = dict(request.desired)
    for key in current_keys:
        if key not in desired and any(regex.match(key) for regex in request.families):
            desired[key] = None
    warnings = list(request.warnings)
    stale = stale_port_keys(request, current_keys)
    if stale:
        warnings.append(
            "%s keeps %s from before it became a port of %s; initscripts ignores IP settings on a bridge port. "
            "Remove them (settings: {KEY: null}) or use purge: true." % (request.path, ", ".join(stale), request.desired["BRIDGE"])
        )
    result = plan_rewrite(before, desired, purge=request.purge)
    if result.commented and result.changed:
        warnings.append(
            "%s: commented out %d line(s) as '#NM: ' because bash, which sources the file as root, would run or read them"
            " differently from NetworkManager: %s" % (request.path, len(result.commented), "; ".join(display(t) for t in result.commented))
        )
    return result, warnings
