"""ip_forward against lab hosts: /proc/sys values, the drop-in's bytes, and boot precedence proven with systemd-sysctl."""

from __future__ import annotations

import pytest

MODULE = "kvmhost.bridging.ip_forward"
OURS = "/etc/sysctl.d/90-kvmhost-bridging.conf"
HEADER = "# Managed by kvmhost.bridging.ip_forward: forwarding sysctls, applied at boot by systemd-sysctl.\n"
DISABLED = "# disabled by kvmhost.bridging.ip_forward: "
SYSTEMD_SYSCTL = "/usr/lib/systemd/systemd-sysctl"
BRIDGE = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables")


def proc(host, key):
    return host.read_file("/proc/sys/" + key.replace(".", "/")).strip()


def set_proc(host, key, value):
    host.run(["sh", "-c", 'echo "$1" > "$2"', "sh", value, "/proc/sys/" + key.replace(".", "/")])


def at_boot(host, key, start="0"):
    """What systemd-sysctl itself sets ``key`` to from the host's files (only that key, in the host's namespace)."""
    set_proc(host, key, start)
    host.run([SYSTEMD_SYSCTL, "--prefix=/" + key.replace(".", "/")])
    return proc(host, key)


def warnings_of(result):
    return [str(w) for w in result.get("warnings", [])]


def test_sets_runtime_and_drop_in_then_is_idempotent(host, ansible):
    assert proc(host, "net.ipv4.ip_forward") == "0"
    assert proc(host, "net.ipv6.conf.all.forwarding") == "0"
    args = {"ipv4": True, "ipv6": True, "bridge_nf_call": False}
    result = ansible.module(host, MODULE, args)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert proc(host, "net.ipv4.ip_forward") == "1"
    assert proc(host, "net.ipv6.conf.all.forwarding") == "1"
    assert [proc(host, key) for key in BRIDGE] == ["0", "0", "0"]
    assert host.read_file(OURS) == HEADER + (
        "net.ipv4.ip_forward = 1\n"
        "net.ipv6.conf.all.forwarding = 1\n"
        "net.bridge.bridge-nf-call-iptables = 0\n"
        "net.bridge.bridge-nf-call-ip6tables = 0\n"
        "net.bridge.bridge-nf-call-arptables = 0\n"
    )
    assert host.run(["stat", "-c", "%a", OURS]).stdout.strip() == "644"
    assert result["runtime"]["net.ipv4.ip_forward"] == {"before": "0", "after": "1"}
    assert result["runtime"]["net.bridge.bridge-nf-call-iptables"] == {"before": "1", "after": "0"}
    assert result["persistent"]["net.ipv4.ip_forward"] == {"before": None, "after": "1", "source": OURS}
    assert result["overridden_by"] == {}
    assert at_boot(host, "net.ipv4.ip_forward") == "1"
    assert at_boot(host, "net.ipv6.conf.all.forwarding") == "1"

    again = ansible.module(host, MODULE, args)
    assert again["changed"] is False

    # Runtime drift is repaired; the file, already right, is not rewritten.
    inode = host.run(["stat", "-c", "%i", OURS]).stdout
    set_proc(host, "net.ipv4.ip_forward", "0")
    drift = ansible.module(host, MODULE, args)
    assert drift["changed"] is True
    assert drift["runtime"]["net.ipv4.ip_forward"] == {"before": "0", "after": "1"}
    assert proc(host, "net.ipv4.ip_forward") == "1"
    assert host.run(["stat", "-c", "%i", OURS]).stdout == inode


def test_omitted_keys_are_left_alone_in_runtime_and_file(host, ansible):
    host.write_file(OURS, "# mine\nnet.ipv6.conf.all.forwarding = 1\nvm.swappiness=10\n")
    set_proc(host, "net.ipv6.conf.all.forwarding", "0")
    result = ansible.module(host, MODULE, {"ipv4": True})
    assert result["changed"] is True
    assert set(result["runtime"]) == {"net.ipv4.ip_forward"}
    assert proc(host, "net.ipv6.conf.all.forwarding") == "0"
    assert host.read_file(OURS) == "# mine\nnet.ipv6.conf.all.forwarding = 1\nvm.swappiness=10\nnet.ipv4.ip_forward = 1\n"


def test_check_mode_and_diff_change_nothing(host, ansible):
    result = ansible.module(host, MODULE, {"ipv4": True, "ipv6": True}, check=True, diff=True)
    assert result["changed"] is True
    assert proc(host, "net.ipv4.ip_forward") == "0"
    assert proc(host, "net.ipv6.conf.all.forwarding") == "0"
    assert host.read_file(OURS) is None
    runtime, drop_in = result["diff"]
    assert runtime["before"] == "net.ipv4.ip_forward = 0\nnet.ipv6.conf.all.forwarding = 0\n"
    assert runtime["after"] == "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
    assert drop_in["before_header"] == OURS + " (absent)"
    assert drop_in["after"] == HEADER + "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"


def test_precedence_conflict_is_reported_then_fixed(host, ansible):
    local = "/etc/sysctl.d/99-local.conf"
    host.write_file(local, "vm.swappiness = 10\nnet.ipv4.ip_forward = 0\n")
    result = ansible.module(host, MODULE, {"ipv4": True})
    assert result["changed"] is True
    assert result["overridden_by"] == {"net.ipv4.ip_forward": local}
    assert result["persistent"]["net.ipv4.ip_forward"] == {"before": "0", "after": "0", "source": local}
    assert any(local + " line 2" in w and "fix_overrides" in w for w in warnings_of(result)), result
    assert proc(host, "net.ipv4.ip_forward") == "1"  # runtime is set all the same
    assert host.read_file(local) == "vm.swappiness = 10\nnet.ipv4.ip_forward = 0\n"
    assert at_boot(host, "net.ipv4.ip_forward", start="1") == "0"  # systemd-sysctl agrees: the later file wins

    fixed = ansible.module(host, MODULE, {"ipv4": True, "fix_overrides": True}, diff=True)
    assert fixed["changed"] is True
    assert fixed["overridden_by"] == {}
    assert fixed["fixed_overrides"] == [{"path": local, "written": local, "line": 2, "text": "net.ipv4.ip_forward = 0", "key": "net.ipv4.ip_forward"}]
    assert host.read_file(local) == "vm.swappiness = 10\n" + DISABLED + "net.ipv4.ip_forward = 0\n"
    assert at_boot(host, "net.ipv4.ip_forward") == "1"
    assert ansible.module(host, MODULE, {"ipv4": True, "fix_overrides": True})["changed"] is False


def test_fix_in_sysctl_conf_through_its_symlink(host, ansible):
    # Debian's /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf (the host's /etc is a private overlay).
    assert host.run(["readlink", "/etc/sysctl.d/99-sysctl.conf"]).stdout.strip() == "../sysctl.conf"
    original = host.read_file("/etc/sysctl.conf")
    host.write_file("/etc/sysctl.conf", original + "net.ipv4.ip_forward=0\n")
    result = ansible.module(host, MODULE, {"ipv4": True})
    assert result["overridden_by"]["net.ipv4.ip_forward"] in ("/etc/sysctl.d/99-sysctl.conf", "/etc/sysctl.conf")
    assert at_boot(host, "net.ipv4.ip_forward", start="1") == "0"

    fixed = ansible.module(host, MODULE, {"ipv4": True, "fix_overrides": True})
    assert fixed["overridden_by"] == {}
    assert host.read_file("/etc/sysctl.conf") == original + DISABLED + "net.ipv4.ip_forward=0\n"
    assert host.run(["readlink", "/etc/sysctl.d/99-sysctl.conf"]).stdout.strip() == "../sysctl.conf"
    assert at_boot(host, "net.ipv4.ip_forward") == "1"


def test_fix_of_a_vendor_file_writes_a_masking_copy(host, ansible):
    # A private tmpfs over /usr/lib/sysctl.d, inside the host's own mount namespace only.
    vendor_dir = "/usr/lib/sysctl.d"
    saved = host.run(["sh", "-c", "cat /usr/lib/sysctl.d/*.conf"]).stdout
    host.run(["mount", "-t", "tmpfs", "-o", "size=1m", "kvmb-vendor", vendor_dir])
    vendor = vendor_dir + "/95-vendor.conf"
    host.write_file(vendor, "kernel.x = 1\nnet.ipv6.conf.all.forwarding = 0\n")
    result = ansible.module(host, MODULE, {"ipv4": True, "ipv6": True, "fix_overrides": True})
    copy = "/etc/sysctl.d/95-vendor.conf"
    assert result["overridden_by"] == {}
    assert [(f["path"], f["written"]) for f in result["fixed_overrides"]] == [(vendor, copy)]
    assert host.read_file(vendor) == "kernel.x = 1\nnet.ipv6.conf.all.forwarding = 0\n"
    assert host.read_file(copy) == "kernel.x = 1\n" + DISABLED + "net.ipv6.conf.all.forwarding = 0\n"
    assert at_boot(host, "net.ipv6.conf.all.forwarding") == "1"
    # The machine's own vendor directory was never touched.
    with open("/usr/lib/sysctl.d/50-pid-max.conf") as handle:
        assert handle.read() in saved


def test_persist_false_is_runtime_only(host, ansible):
    result = ansible.module(host, MODULE, {"ipv4": True, "persist": False})
    assert result["changed"] is True
    assert proc(host, "net.ipv4.ip_forward") == "1"
    assert host.read_file(OURS) is None
    assert result["sysctl_file"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ipv4": True, "fix_overrides": True, "persist": False}, "fix_overrides needs persist: true"),
        ({"ipv4": True, "sysctl_file": "/etc/sysctl.d/kvm.txt"}, "absolute path ending in .conf"),
        ({"ipv4": True, "sysctl_file": "sysctl.d/kvm.conf"}, "absolute path ending in .conf"),
        ({"ipv4": "maybe"}, "ipv4"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(host, ansible, args, message):
    listing = host.run(["ls", "-la", "/etc/sysctl.d"]).stdout
    result = ansible.module(host, MODULE, args)
    assert result.get("failed") is True
    assert message in result["msg"]
    assert proc(host, "net.ipv4.ip_forward") == "0"
    assert host.run(["ls", "-la", "/etc/sysctl.d"]).stdout == listing


def test_sysctl_file_that_is_the_link_is_written_through_and_applied_at_boot(host, ansible):
    """sysctl_file: /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf; the link stays, /etc/sysctl.conf gets the value (issue 13)."""
    link = "/etc/sysctl.d/99-sysctl.conf"
    assert host.run(["readlink", link]).stdout.strip() == "../sysctl.conf"
    host.write_file("/etc/sysctl.conf", "# local settings\n")
    host.run(["chmod", "0600", "/etc/sysctl.conf"])
    result = ansible.module(host, MODULE, {"ipv4": True, "sysctl_file": link})
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert host.run(["readlink", link]).stdout.strip() == "../sysctl.conf"
    assert host.read_file("/etc/sysctl.conf") == "# local settings\nnet.ipv4.ip_forward = 1\n"
    assert host.run(["stat", "-c", "%a %U", "/etc/sysctl.conf"]).stdout.strip() == "600 root"
    assert at_boot(host, "net.ipv4.ip_forward") == "1"
    assert ansible.module(host, MODULE, {"ipv4": True, "sysctl_file": link})["changed"] is False
