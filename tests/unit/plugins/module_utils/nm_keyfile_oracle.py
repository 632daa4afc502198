"""Read keyfiles with libnm's own keyfile reader (NetworkManager 1.42's NM.keyfile_read) and print JSON.

Run with the system python3 (python3-gi, gir1.2-nm-1.0), not the venv:
    /usr/bin/python3 nm_keyfile_oracle.py FILE...
    /usr/bin/python3 nm_keyfile_oracle.py --glib < {"parse": [text...], "escape": [value...], "escape_list": [[item...]...]}
Prints {file: {...}} with the fields that _keyfile.read_profile returns, or
{"error": ...} where NetworkManager refuses the file. Like the daemon
(nms-keyfile-reader.c), a missing id becomes the file name and a missing uuid
is generated before the profile is normalised.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

import gi

gi.require_version("NM", "1.0")
from gi.repository import NM, GLib  # noqa: E402  pylint: disable=wrong-import-position


def addresses(setting):
    return ["%s/%d" % (a.get_address(), a.get_prefix()) for a in (setting.get_address(i) for i in range(setting.get_num_addresses()))]


def ip(setting):
    if setting is None:
        return {}
    return {
        "method": setting.get_method(),
        "addresses": addresses(setting),
        "gateway": setting.get_gateway(),
        "dns": [setting.get_dns(i) for i in range(setting.get_num_dns())],
    }


def read(path):
    keyfile = GLib.KeyFile()
    try:
        keyfile.load_from_file(path, GLib.KeyFileFlags.KEEP_COMMENTS)
        connection = NM.keyfile_read(keyfile, os.path.dirname(path), NM.KeyfileHandlerFlags.NONE, None, None)
    except GLib.Error as exc:
        return {"error": exc.message}
    s_con = connection.get_setting_connection()
    if s_con is None:
        s_con = NM.SettingConnection.new()
        connection.add_setting(s_con)
    name = os.path.basename(path)
    if not s_con.get_id():
        s_con.set_property("id", name[: -len(".nmconnection")] if name.endswith(".nmconnection") else name)
    had_uuid = bool(s_con.get_uuid())
    if not had_uuid:
        s_con.set_property("uuid", str(uuid.uuid4()))
    try:
        connection.normalize()
    except GLib.Error as exc:
        return {"error": exc.message}
    s_con = connection.get_setting_connection()
    wired = connection.get_setting_wired()
    bridge = connection.get_setting_bridge()
    port = bool(s_con.get_master())
    return {
        "id": s_con.get_id(),
        "uuid": s_con.get_uuid() if had_uuid else None,
        "type": s_con.get_connection_type(),
        "interface_name": s_con.get_interface_name(),
        "controller": s_con.get_master(),
        "port_type": s_con.get_slave_type(),
        "mac_address": wired.get_mac_address() if wired else None,
        "cloned_mac_address": wired.get_cloned_mac_address() if wired else None,
        "autoconnect": s_con.get_autoconnect(),
        "ipv4": {} if port else ip(connection.get_setting_ip4_config()),
        "ipv6": {} if port else ip(connection.get_setting_ip6_config()),
        "bridge": {"stp": bridge.get_stp(), "forward_delay": bridge.get_forward_delay()} if bridge else {},
    }


def glib_parse(text):
    """{groups: [[name, [[key, value or null]...]]...]} as GLib reads the text, or {error}."""
    keyfile = GLib.KeyFile()
    try:
        keyfile.load_from_bytes(GLib.Bytes.new(text.encode("utf-8", "surrogateescape")), GLib.KeyFileFlags.KEEP_COMMENTS)
    except GLib.Error as exc:
        return {"error": exc.message}
    groups = []
    for group in keyfile.get_groups()[0]:
        pairs = []
        for key in dict.fromkeys(keyfile.get_keys(group)[0]):
            try:
                value = keyfile.get_string(group, key)
            except GLib.Error:
                value = None
            try:
                items = keyfile.get_string_list(group, key)
            except GLib.Error:
                items = None
            pairs.append([key, value, items])
        groups.append([group, pairs])
    return {"groups": groups}


def glib_escape(value, as_list=False):
    keyfile = GLib.KeyFile()
    if as_list:
        keyfile.set_string_list("g", "k", value)
    else:
        keyfile.set_string("g", "k", value)
    return keyfile.get_value("g", "k")


def glib(request):
    return {
        "parse": [glib_parse(text) for text in request.get("parse", [])],
        "escape": [glib_escape(value) for value in request.get("escape", [])],
        "escape_list": [glib_escape(items, True) for items in request.get("escape_list", [])],
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--glib"]:
        print(json.dumps(glib(json.load(sys.stdin))))
    else:
        print(json.dumps({path: read(path) for path in sys.argv[1:]}, indent=1, sort_keys=True))
