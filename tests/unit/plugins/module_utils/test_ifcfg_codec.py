"""The ifcfg value codec: NetworkManager's svUnescape vectors, svEscape rules, bash agreement."""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.kvmhost.bridging.plugins.module_utils import _ifcfg_codec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
CONFORMANCE = os.environ.get("KVMB_IFCFG_CONFORMANCE", os.path.join(os.path.dirname(ROOT), "shared", "conformance", "ifcfg"))
VECTORS_FILE = os.path.join(CONFORMANCE, "nm-svunescape-vectors.json")
if not os.path.exists(VECTORS_FILE):  # pragma: no cover - the conformance data is part of the test contract
    pytest.fail(
        "the ifcfg conformance data is missing: %s expected (../shared/conformance/ifcfg beside the repository, or KVMB_IFCFG_CONFORMANCE)" % VECTORS_FILE,
        pytrace=False,
    )

with open(VECTORS_FILE, encoding="utf-8") as _handle:
    VECTORS = json.load(_handle)


def _expected_bytes(exp):
    if exp is None:
        return None
    if isinstance(exp, dict):
        return bytes.fromhex(exp["bytes_hex"])
    return exp.encode("utf-8")


def test_vector_file_is_complete():
    assert len(VECTORS) == 145


@pytest.mark.parametrize("vector", VECTORS, ids=["%03d:%r" % (i, v["val"]) for i, v in enumerate(VECTORS)])
def test_svunescape_vector(vector):
    """Each vector gives NetworkManager's value, or its 'badly quoted' verdict (None)."""
    got = _ifcfg_codec.unescape_bytes(vector["val"].encode("utf-8"), check_utf8=False)
    assert got == _expected_bytes(vector["exp"])


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["exp"] is not None], ids=lambda v: repr(v["val"]))
def test_vector_round_trip(vector):
    """Like upstream: escaping the expected value and reading it back gives the value again."""
    value = _expected_bytes(vector["exp"])
    assert _ifcfg_codec.unescape_bytes(_ifcfg_codec.escape_bytes(value), check_utf8=False) == value


# NetworkManager's normal reading also rejects a NUL inside the value and bytes that are not UTF-8.
@pytest.mark.parametrize("raw", ["$'\\U0x'", "$'\\x0'", "$'\\008'", "$'\\08'", "$'x\\U0'", "$'\\Uabcde0'", "$'\\xff'"])
def test_utf8_check_rejects(raw):
    assert _ifcfg_codec.unescape_bytes(raw.encode(), check_utf8=False) is not None
    assert _ifcfg_codec.unescape(raw) is None


def test_utf8_check_accepts_bytes_that_form_utf8():
    assert _ifcfg_codec.unescape("$'\\303\\251'") == "\u00e9"
    assert _ifcfg_codec.unescape("$'\\xc3\\xa9'") == "\u00e9"


def _ansi_parts():
    """The $'...' vectors as upstream's data_ansi table: (body, expected bytes, can_concat, needs_separator)."""
    parts = []
    for vector in VECTORS[VECTORS.index(next(v for v in VECTORS if v["macro"] == "direct")) + 1 :]:
        assert vector["val"].startswith("$'") and vector["val"].endswith("'")
        exp = _expected_bytes(vector["exp"])
        can_concat = vector["macro"] == "V2" or (vector["macro"] == "V1" and exp is not None)
        parts.append((vector["val"][2:-1], exp, can_concat, vector["macro"] == "V2"))
    return parts


def _full_parts():
    parts = []
    for vector in VECTORS:
        if vector["macro"] == "direct":
            break
        exp = _expected_bytes(vector["exp"])
        parts.append((vector["val"], exp, vector["macro"] == "V1" and exp is not None))
    return parts


def _ansi_combination(rng, parts, count):
    body, exp = "", b""
    usable = [p for p in parts if p[2]]
    for i in range(count, 0, -1):
        text, value, _can, separator = rng.choice(usable)
        body += text
        exp += value
        if separator and i > 1:
            # an open escape such as \xa must not run into the next part
            body += " "
            exp += b" "
    return "$'" + body + "'", exp


@pytest.mark.parametrize("seed", range(200))
def test_concatenation(seed):
    """Upstream's property: values that may be concatenated read as the concatenation of their values."""
    rng = random.Random(seed)
    full = [p for p in _full_parts() if p[2]]
    ansi = _ansi_parts()
    raw, exp = "", b""
    remaining = rng.randrange(2, 7)
    while remaining:
        if rng.randrange(3) == 0:
            text, value = _ansi_combination(rng, ansi, rng.randrange(1, 6))
        else:
            text, value, _can = rng.choice(full)
            remaining -= 1
        raw += text
        exp += value
    raw += rng.choice(["", " ", "    "]) + rng.choice(["", " #", " #foo"])
    assert _ifcfg_codec.unescape_bytes(raw.encode("utf-8"), check_utf8=False) == exp


# --- writing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("", ""),
        ("x", "x"),
        ("k=v", "k=v"),
        ("a#b", "a#b"),
        ("two words", '"two words"'),
        ("it's", '"it\'s"'),
        ("$(x)", '"\\$(x)"'),
        ("`id`", '"\\`id\\`"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("~root", '"~root"'),
        ("a;b", '"a;b"'),
        ("a|b&c", '"a|b&c"'),
        ("(x)<y>", '"(x)<y>"'),
        ("*", "*"),
        ("caf\u00e9", '"caf\u00e9"'),
        ("line\nnext", "$'line\\nnext'"),
        ("tab\there", '"tab\there"'),  # TAB is in the quote set, checked before control characters
        ("bell\x07", "$'bell\\007'"),
        ("del\x7f", "$'del\\177'"),
        ("\u00e9\n", "$'\\303\\251\\n'"),
        ("q'\"\\\n", "$'q\\'\\\"\\\\\\n'"),
        ("\udcff", "$'\\377'"),
    ],
)
def test_escape_rules(value, written):
    assert _ifcfg_codec.escape(value) == written
    assert _ifcfg_codec.unescape(written, check_utf8=False) == value


HOSTILE = [
    "$(touch {marker})",
    "`touch {marker}`",
    "; touch {marker}",
    "x\ntouch {marker}",
    "x'; touch {marker}; '",
    'x"; touch {marker}; "',
    "$'\\n'; touch {marker}",
    "\\$(touch {marker})",
    "${{PATH:+$(touch {marker})}}",
    "~",
    "~root/*",
    "*",
    "?[a-z]*",
    "a b c",
    "&& touch {marker}",
    "| touch {marker}",
    "> {marker}",
    "< /etc/passwd",
    "#comment",
    "\\",
    "\\\n",
    "'",
    '"',
    "$",
    "$HOME",
    "!",
    "\u00e9\u4e2d\U0001f600",
    "\r",
    "\x01\x1b[31m",
    "",
]


def _bash_values(path, keys):
    """Source ``path`` the way initscripts does and return the keys' values as bytes."""
    script = 'set -a; . "$1"; shift; for k in "$@"; do printf "%s\\0" "${!k}"; done'
    proc = subprocess.run(["env", "-i", "bash", "-c", script, "_", path, *keys], capture_output=True, check=True)
    return proc.stdout.split(b"\0")[:-1]


def _write_and_source(tmp_path, values):
    keys = ["K%d" % i for i in range(len(values))]
    content = "".join("%s=%s\n" % (key, _ifcfg_codec.escape(value)) for key, value in zip(keys, values))
    path = tmp_path / "ifcfg-test"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    return content, _bash_values(str(path), keys)


def test_hostile_values_read_back_in_bash_and_networkmanager(tmp_path):
    marker = tmp_path / "executed"
    values = [text.format(marker=marker) for text in HOSTILE]
    content, sourced = _write_and_source(tmp_path, values)
    assert not marker.exists(), "sourcing the file ran a command"
    assert sourced == [value.encode("utf-8") for value in values]
    assert list(_ifcfg_codec.parse(content).values()) == values


# Any text without NUL (which no reader can represent and the module rejects).
values_st = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)
HOSTILE_PIECES = ["$(", "`", "'", '"', "\\", ";", "\n", "~", "*", "$", " ", "#", "\t", "\r", "(", ")", "{", "}", "\x7f", "\u00e9"]
HOSTILE_PIECES += ["$(touch MARK)", "`touch MARK`"]
hostile_st = st.lists(st.sampled_from(HOSTILE_PIECES), max_size=12).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(values_st, hostile_st))
def test_property_parse_of_write(value):
    """For any value, NetworkManager's reading of the written form gives it back, and bash agrees.

    bash is the real one, sourcing the file the way initscripts does, in an empty directory that must stay empty.
    """
    raw = _ifcfg_codec.escape(value)
    assert "\n" not in raw
    assert _ifcfg_codec.unescape(raw) == value
    assert _ifcfg_codec.parse("KEY=%s\n" % raw) == {"KEY": value}
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "ifcfg-test")
        with open(path, "wb") as handle:
            handle.write(("KEY=%s\n" % raw).encode("utf-8", "surrogateescape"))
        script = 'set -a; . "$1"; printf "%s" "$KEY"'
        proc = subprocess.run(["env", "-i", "bash", "-c", script, "_", path], capture_output=True, check=True, cwd=scratch)
        assert proc.stdout == value.encode("utf-8", "surrogateescape")
        assert os.listdir(scratch) == ["ifcfg-test"], "sourcing the file ran a command"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(values_st, hostile_st), min_size=1, max_size=8))
def test_property_bash_sources_the_same_values(tmp_path, values):
    marker = tmp_path / "executed"
    values = [v.replace("MARK", str(marker)) for v in values]
    _content, sourced = _write_and_source(tmp_path, values)
    assert sourced == [value.encode("utf-8") for value in values]
    assert not marker.exists()


# --- bash_safe: which existing spellings the module leaves alone ------------------------


@pytest.mark.parametrize(
    ("raw", "value", "safe"),
    [
        ("dhcp", "dhcp", True),
        ('"dhcp"', "dhcp", True),
        ("'dhcp'", "dhcp", True),
        ("dhcp  ", "dhcp", True),
        ('"vlan201"  ', "vlan201", True),
        ("dhcp # comment", "dhcp", True),
        ("'a #b'", "a #b", True),
        ('"System eth0"', "System eth0", True),
        ('"foo\\"bar\\\\"', 'foo"bar\\', True),
        ("dhcp\r", "dhcp", False),  # bash keeps the CR
        ("~root", "~root", False),  # bash expands ~
        ("$HOME", "$HOME", False),  # bash expands $HOME
        ("`id`", "`id`", False),  # bash runs id
        ('"\\~"', "~", False),  # old NetworkManager escape, bash keeps the backslash
        ("d'hcp'", "dhcp", False),
        ("dhcp;", "dhcp", False),
        ("none", "dhcp", False),
    ],
)
def test_bash_safe(raw, value, safe):
    assert _ifcfg_codec.bash_safe(raw, value) is safe


def test_glib_unichar_encoding():
    assert _ifcfg_codec._utf8_of_codepoint(0x41) == b"A"
    assert _ifcfg_codec._utf8_of_codepoint(0xAB) == "\u00ab".encode()
    assert _ifcfg_codec._utf8_of_codepoint(0x10FFFF) == "\U0010ffff".encode()
    assert _ifcfg_codec._utf8_of_codepoint(0xABCDE0) == bytes.fromhex("f8aabcb7a0")
    assert _ifcfg_codec._utf8_of_codepoint(0xABCDE01) == bytes.fromhex("fc8aaf8db881")
    assert _ifcfg_codec._utf8_of_codepoint(0xFFFFFFFF) == bytes.fromhex("ffbfbfbfbfbf")
