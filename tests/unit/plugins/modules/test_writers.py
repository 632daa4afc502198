"""Every file writer of the collection, under every umask, with and without a file and through a symbolic link.

Issue 13's property: whatever the umask, a new file gets the mode its writer
declares and belongs to the running user; an existing file keeps its owner,
group and mode; a symbolic link stays a link and the file it names gets the
content; a link that names nothing is refused and left alone. The writers run
with a real AnsibleModule (its atomic_move is what reset modes on main).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import given, settings
from hypothesis import strategies as st
from module_runner import run_main

from ansible_collections.kvmhost.bridging.plugins.module_utils import _firewall, _guard, _guard_state, _sysctl
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.modules import ifcfg, nm_keyfile

OTHER_UID, OTHER_GID = 4242, 4343
EXISTING_MODE = 0o640
RULES = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n"


def real_module(params):
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.params = params
    return module


# Each writer: (relative path it writes, the mode it gives a new file, whether it creates a file,
# write(base) that runs it and raises ModuleError on refusal).


def write_ifcfg(base):
    result = run_main(ifcfg, {"device": "br0", "type": "bridge", "onboot": True, "config_dir": os.path.join(base, "dir")})
    if result.get("failed"):
        raise ModuleError(result["msg"])


KEYFILE = "[connection]\nid=breth0\ntype=bridge\ninterface-name=breth0\n"


def write_keyfile(base):
    args = {"name": "breth0", "type": "bridge", "interface": "breth0", "stp": False, "reload": False, "config_dir": os.path.join(base, "dir")}
    result = run_main(nm_keyfile, args)
    if result.get("failed"):
        raise ModuleError(result["msg"])


def write_sysctl(base):
    for key in (_sysctl.KEY_IPV4,):
        path = os.path.join(base, "proc/sys", _sysctl.key_path(key))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write("0\n")
    params = {"ipv4": True, "ipv6": None, "bridge_nf_call": None, "persist": True, "sysctl_file": "/dir/90-kvm.conf", "fix_overrides": False}
    _sysctl.run(real_module(params), root=base)


def write_rules(base):
    params = {
        "chain": "FORWARD",
        "table": "filter",
        "reject_with": "icmp-host-prohibited",
        "state": "absent",
        "accept_bridged": False,
        "persist": True,
        "rules_file": os.path.join(base, "dir/iptables"),
        "rules_file_ipv6": "/nonexistent",
        "ip_version": "ipv4",
    }
    module = real_module(params)
    module.get_bin_path = lambda name, required=False, opt_dirs=None: "/usr/sbin/" + name if "nft" in name or name == "iptables" else None
    module.run_command = lambda args, data=None, binary_data=False, **kw: (0, RULES if "save" in args[0] else "", "")
    _firewall.run(module)


def write_guard_state(base):
    _guard_state.write_json(os.path.join(base, "dir/guard-g1.json"), {"format": 1})


def write_guard_restore(base):
    # The guard saved the file (or its absence) with mode 0640 and owner OTHER at arm time, then the change
    # happened; a rollback writes the saved content back.
    path = os.path.join(base, "dir/restored")
    saved = [{"path": path, "exists": True, "content": "c2F2ZWQK", "mode": EXISTING_MODE, "uid": OTHER_UID, "gid": OTHER_GID}]
    done = _guard.restore_files(real_module({}), saved)
    if done[0]["action"] == "failed":
        raise ModuleError(done[0]["error"])


KEEPS = (EXISTING_MODE, OTHER_UID, OTHER_GID)
# writer: (relative path, mode of a new file, whether it creates a file, (mode, uid, gid) of an existing file after, write)
WRITERS = {
    "ifcfg": ("dir/ifcfg-br0", 0o644, True, KEEPS, write_ifcfg),
    "NetworkManager keyfile": ("dir/breth0.nmconnection", 0o600, True, (0o600, 0, 0), write_keyfile),  # NM wants root 0600
    "sysctl.d drop-in": ("dir/90-kvm.conf", 0o644, True, KEEPS, write_sysctl),
    "saved iptables rules": ("dir/iptables", None, False, KEEPS, write_rules),
    "guard state": ("dir/guard-g1.json", 0o600, True, KEEPS, write_guard_state),
    "guard restore": ("dir/restored", EXISTING_MODE, True, KEEPS, write_guard_restore),
}


@contextlib.contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def prepare(base, relative, existing, linked):
    """The target as the case wants it; returns the path of the regular file that holds the content."""
    os.makedirs(os.path.join(base, "dir"), mode=0o700)
    os.makedirs(os.path.join(base, "elsewhere"), mode=0o700)
    path = os.path.join(base, relative)
    real = os.path.join(base, "elsewhere", os.path.basename(relative)) if linked else path
    if existing:
        with open(real, "w") as handle:
            handle.write(RULES if relative.endswith("iptables") else KEYFILE if relative.endswith(".nmconnection") else "# old\n")
        os.chown(real, OTHER_UID, OTHER_GID)
        os.chmod(real, EXISTING_MODE)
    if linked:
        os.symlink(os.path.relpath(real, os.path.dirname(path)), path)
    return path, real


@pytest.mark.parametrize("linked", [False, True], ids=["file", "symlink"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
@settings(max_examples=10, deadline=None)
@given(mask=st.sampled_from([0o000, 0o022, 0o077]))
def test_every_writer_keeps_modes_owners_and_links(writer, mask, existing, linked):
    relative, new_mode, creates, existing_after, write = WRITERS[writer]
    with tempfile.TemporaryDirectory() as base:
        path, real = prepare(base, relative, existing, linked)
        link_target = os.readlink(path) if linked else None
        with umask(mask):
            if linked and not existing:
                if creates:
                    with pytest.raises(ModuleError, match="symbolic link"):
                        write(base)
                else:
                    write(base)  # nothing to edit: the link names no file
                assert os.readlink(path) == link_target
                assert not os.path.exists(real)
                return
            write(base)
        if linked:
            assert os.path.islink(path) and os.readlink(path) == link_target
        else:
            assert not os.path.islink(path)
        if not existing and not creates:
            assert not os.path.lexists(real)
            return
        info = os.stat(real)
        assert stat.S_ISREG(info.st_mode)
        with open(real) as handle:
            assert handle.read() not in ("# old\n", KEYFILE)
        if existing:
            assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == existing_after
        elif writer == "guard restore":  # recreated with the mode and owner it was saved with
            assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == KEEPS
        else:
            assert (stat.S_IMODE(info.st_mode), info.st_uid) == (new_mode, os.geteuid())
        assert sorted(os.listdir(os.path.dirname(real))) == [os.path.basename(real)]  # no temp file left


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_new_ifcfg_file_gets_0644_under_any_umask(cfg, mask):
    with umask(mask):
        result = run_main(ifcfg, {"device": "br0", "type": "bridge", "config_dir": str(cfg)})
    assert result["changed"]
    assert stat.S_IMODE((cfg / "ifcfg-br0").stat().st_mode) == 0o644
