"""Read keyfiles with libnm's own keyfile reader (NetworkManager 1.42's NM.keyfile_read) and print JSON.

Run with the system python3 (python3-gi, gir1.2-nm-1.0), not the venv:
    /usr/bin/python3 nm_keyfile_oracle.py FILE...
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


if __name__ == "__main__":
    print(json.dumps({path: read(path) for path in sys.argv[1:]}, indent=1, sort_keys=True))
