"""The keyfile codec against GLib's GKeyFile and NetworkManager 1.42's own keyfile reader (libnm).

The oracles run in the system python3 (python3-gi and gir1.2-nm-1.0, installed by
scripts/setup.sh): nm_keyfile_oracle.py reads the same text with the real
GKeyFile and NM.keyfile_read, and the results must agree with _keyfile's.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kvmhost.bridging.plugins.module_utils import _keyfile

HERE = os.path.dirname(os.path.abspath(__file__))
ORACLE = os.path.join(HERE, "nm_keyfile_oracle.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
CONFORMANCE = os.environ.get("KVMB_KEYFILE_CONFORMANCE", os.path.join(os.path.dirname(ROOT), "shared", "conformance", "keyfile", "nm-keyfiles"))
FILES = sorted(os.listdir(CONFORMANCE))


def system_python(*args, stdin=None):
    result = subprocess.run(["/usr/bin/python3", ORACLE, *args], input=stdin, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def nm_read():
    """NetworkManager 1.42's reading of every conformance file (one oracle run)."""
    return system_python(*[os.path.join(CONFORMANCE, name) for name in FILES])


def test_conformance_set_is_complete():
    assert len(FILES) == 18


@pytest.mark.parametrize("name", FILES)
def test_conformance_file_reads_as_networkmanager_1_42(name, nm_read):
    path = os.path.join(CONFORMANCE, name)
    want = nm_read[path]
    assert "error" not in want, want
    with open(path, encoding="utf-8") as handle:
        got = _keyfile.read_profile(handle.read(), name, before_1_46=True)
    assert got["loads"]
    want = dict(want, type=_keyfile.short_type(want["type"]))
    if want["uuid"] is None:  # NetworkManager made one up
        assert got["uuid"] is None
        del want["uuid"]
    assert {key: got[key] for key in want} == want


def _has_controller_key(name):
    with open(os.path.join(CONFORMANCE, name), encoding="utf-8") as handle:
        return "controller=" in handle.read()


@pytest.mark.parametrize("name", [name for name in FILES if _has_controller_key(name)])
def test_controller_keys_count_only_from_1_46(name):
    with open(os.path.join(CONFORMANCE, name), encoding="utf-8") as handle:
        text = handle.read()
    new = _keyfile.read_profile(text, name)
    old = _keyfile.read_profile(text, name, before_1_46=True)
    assert (new["controller"], new["port_type"]) == ("br0", "bridge")
    assert old["controller"] is None
    assert new["controller_keys"] == ["controller"]
    assert any("before 1.46" in problem and "master=br0" in problem for problem in new["problems"])


def test_duplicate_groups_merge_and_the_last_key_wins():
    text = "[connection]\nid=a\nid=b\n[ipv4]\nmethod=auto\n[connection]\nid=c\ntype=bridge\n"
    profile = _keyfile.read_profile(text, "x.nmconnection")
    assert profile["id"] == "c"
    assert profile["type"] == "bridge"


def test_missing_id_is_the_file_name_without_suffix():
    assert _keyfile.read_profile("[connection]\ntype=ethernet\n", "System eth0.nmconnection")["id"] == "System eth0"
    assert _keyfile.read_profile("[connection]\ntype=ethernet\n", "ifcfg-eth0")["id"] == "ifcfg-eth0"


def test_a_line_glib_refuses_is_reported():
    profile = _keyfile.read_profile("[connection]\nid=a\nthis is not a pair\n", "a.nmconnection")
    assert not profile["loads"]
    assert "line 3" in profile["problems"][0]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (".hidden.nmconnection", "hidden"),
        ("eth0.nmconnection~", "backup"),
        ("eth0.nmconnection.1234.2026-01-01@12:00:00~", "backup"),
        ("eth0.Ab12cD", "mkstemp"),
        ("ca.pem", "certificate"),
        ("key.DER", "certificate"),
        ("eth0.nmconnection", None),
        ("ifcfg-eth0", None),
    ],
)
def test_ignored_names(name, reason):
    got = _keyfile.ignored_name(name)
    assert (got is None) if reason is None else (reason in got)


def test_file_name_for_turns_slash_and_leading_dot_into_underscore():
    assert _keyfile.file_name_for("a/b") == "a_b.nmconnection"
    assert _keyfile.file_name_for(".x") == "_x.nmconnection"


# ---------------------------------------------------------------------------
# GLib differential: random files and values, read and written by both


_PIECES = [
    "[connection]", "[ipv4]", "[ethernet]", "[802-3-ethernet]", "[a b]", "[]", "[x]y", "[x] ", " [x]", "[x\ty]", "[x",
    "# comment", "  # indented comment", "", "   ", "\t",
    "id=x", "id = spaced ", "k=\\s\\slead", "k=\\t\\n\\r\\\\", "k=bad\\q", "k=end\\", "dns=1.2.3.4;5.6.7.8;", "dns=a\\;b;c",
    "k[de]=v", "k[de=v", "k]=v", "=v", "novalue", " k=v", "k= v", "k=v\r", "k==v", "k k=v", "k=v\x0b", "key=é", "k=\x00x",
]  # fmt: skip


def _random_texts(count, seed):
    rng = random.Random(seed)
    texts = []
    for _text in range(count):
        lines = [rng.choice(_PIECES) for _line in range(rng.randint(0, 8))]
        if rng.random() < 0.8:
            lines.insert(0, rng.choice(["[connection]", "[ipv4]", "[a b]"]))
        texts.append("\n".join(lines) + ("\n" if rng.random() < 0.8 else ""))
    return texts


def _mine(text):
    keyfile = _keyfile.KeyFile.parse(text)
    if keyfile.errors:
        return {"error": True}
    groups = []
    for group in keyfile.groups():
        pairs = []
        for key, raw in keyfile.raw_items(group).items():
            try:
                value = _keyfile.unescape(raw)
            except _keyfile.ValueError_:
                value = None
            try:
                items = _keyfile.unescape(raw, as_list=True)
            except _keyfile.ValueError_:
                items = None
            pairs.append([key, value, items])
        groups.append([group, pairs])
    return {"groups": groups}


def test_parsing_agrees_with_glib_on_random_files():
    texts = _random_texts(1500, 11)
    answers = system_python("--glib", stdin=json.dumps({"parse": texts}))["parse"]
    for text, want in zip(texts, answers):
        got = _mine(text)
        if "error" in want:
            assert "error" in got, (text, want)
        else:
            assert got == want, text


_VALUE_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.text(_VALUE_CHARS, max_size=12), max_size=60))
def test_escaping_agrees_with_glib(values):
    lists = [values[i : i + 3] for i in range(0, len(values), 3)]
    want = system_python("--glib", stdin=json.dumps({"escape": values, "escape_list": lists}))
    assert [_keyfile.escape(value) for value in values] == want["escape"]
    assert [_keyfile.escape_list(items) for items in lists] == want["escape_list"]


# ---------------------------------------------------------------------------
# Round trips (pure)

_GROUP = st.text(st.characters(codec="utf-8", exclude_characters="[]\x00", min_codepoint=0x20), min_size=1, max_size=10).filter(lambda name: "\x7f" not in name)
_KEY = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_. -]{0,10}[A-Za-z0-9]|[A-Za-z0-9]", fullmatch=True)
# GKeyFile has no escape for a leading vertical tab or form feed and strips them on
# reading (GLib's own writer loses them too): _keyfile_plan.check_value refuses them.
_VALUE = st.text(_VALUE_CHARS, max_size=20).filter(lambda value: value.lstrip(" \t")[:1] not in ("\v", "\f"))


@given(st.dictionaries(_GROUP, st.dictionaries(_KEY, st.one_of(_VALUE, st.lists(_VALUE, max_size=4)), max_size=5), max_size=5))
def test_parse_of_write_is_identity(groups):
    text = _keyfile.dumps(groups)
    keyfile = _keyfile.KeyFile.parse(text)
    assert keyfile.errors == []
    assert keyfile.groups() == list(groups)
    for group, values in groups.items():
        for key, value in values.items():
            if isinstance(value, list):
                assert keyfile.get_list(group, key) == value
            else:
                assert keyfile.get(group, key) == value


@given(_VALUE)
def test_unescape_of_escape_is_identity(value):
    assert _keyfile.unescape(_keyfile.escape(value)) == value


@given(st.lists(_VALUE, max_size=6))
def test_list_round_trip(items):
    assert _keyfile.unescape(_keyfile.escape_list(items), as_list=True) == items


@given(st.sampled_from(_random_texts(300, 5)), _KEY, _VALUE)
def test_setting_a_key_keeps_every_other_line(text, key, value):
    keyfile = _keyfile.KeyFile.parse(text)
    if keyfile.errors or not keyfile.groups():
        return
    group = keyfile.groups()[0]
    others = [line.text for line in keyfile.lines if not (line.kind == "pair" and line.group == group and line.key == key)]
    keyfile.set(group, key, value)
    again = _keyfile.KeyFile.parse(keyfile.render())
    assert again.get(group, key) == value
    assert [line.text for line in again.lines if not (line.kind == "pair" and line.group == group and line.key == key)] == others
