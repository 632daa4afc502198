"""Real VMs in the lab: libvirtd inside lab hosts, libvirt domains and plain QEMU guests.

A guest boots Debian's cloud kernel with the busybox initramfs of
``tests/lab/guest`` (TCG: KVM fails on this kind of machine), brings up every
NIC it has or gets later, runs udhcpc on each and reports leases and pings on
its serial console, a file the lab reads (see guest/init for the lines).

- :class:`Libvirtd` runs virtlogd and libvirtd inside a lab host: the host's
  private /run, its own /etc/libvirt (the host's /etc overlay) and bind mounts
  over /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt. Domains are
  of type ``qemu`` on ``qemu:///system`` inside the host.
- :func:`start_qemu` starts a plain QEMU process inside a host on existing taps
  (those the ``tap`` module made).

Every PID is recorded in the lab's state (``pids``), and QEMU processes are
found again through libvirt's pid files, so the lab's teardown stops them all
by PID, also after a failed test (see kvmblab.Lab.down and remove_host).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import xml.sax.saxutils

import kvmblab

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = "/usr/bin/qemu-system-x86_64"
URI = "qemu:///system"
CMDLINE = "console=ttyS0 quiet panic=-1"
LIBVIRT_DIRS = ("/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")
DAEMONS = ("libvirtd", "virtlogd", "qemu-system-x86")  # /proc/<pid>/comm of what this module starts

QEMU_CONF = """\
# kvmb lab: QEMU as root in a namespace host, no cgroups, no security driver.
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
dynamic_ownership = 0
remember_owner = 0
"""

LIBVIRTD_CONF = """\
# kvmb lab: only root in the host reaches the socket (in the host's own /run).
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""

LEASE_RE = re.compile(r"^KVMB lease (\S+) (\S+) (\S+)\s*$", re.M)


def guest_image():
    """The kernel and initramfs of the guests (built from the cached Debian packages when needed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kvmb_guest_build", os.path.join(HERE, "guest", "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    try:
        return build.image()
    except build.GuestImageError as exc:
        raise kvmblab.LabError(str(exc)) from exc


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise kvmblab.LabError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.2)


class Console:
    """A guest's serial console, a file the guest appends to."""

    def __init__(self, path):
        self.path = path

    def text(self):
        try:
            with open(self.path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        """A position: the waits below look only at what the guest writes after it."""
        return len(self.text().encode("utf-8"))

    def leases(self, since=0):
        """[(interface, mac, address)] reported after ``since``, oldest first."""
        data = self.text().encode("utf-8")[since:].decode("utf-8", "replace").replace("\r", "")
        return [m.groups() for m in LEASE_RE.finditer(data)]

    def wait_line(self, pattern, since=0, timeout=90):
        regex = re.compile(pattern, re.M)

        def found():
            data = self.text().encode("utf-8")[since:].decode("utf-8", "replace").replace("\r", "")
            return regex.search(data)

        return _wait(found, timeout, "%r on %s" % (pattern, self.path))

    def wait_lease(self, mac, since=0, timeout=90, network=None):
        """The address the guest's NIC ``mac`` leased after ``since`` (in ``network``, when given)."""
        import ipaddress

        def found():
            for _ifname, lease_mac, address in self.leases(since):
                if lease_mac.lower() == mac.lower() and (network is None or ipaddress.ip_address(address) in ipaddress.ip_network(network)):
                    return address
            return None

        return _wait(found, timeout, "a lease of %s%s on %s" % (mac, " in %s" % network if network else "", self.path))


class Domain:
    """A libvirt domain of a lab host's libvirtd."""

    def __init__(self, libvirtd, name, console):
        self.libvirtd = libvirtd
        self.name = name
        self.console = console

    def __repr__(self):
        return "Domain(%s on %s)" % (self.name, self.libvirtd.host.name)

    def virsh(self, *args, check=True):
        return self.libvirtd.virsh(*args, check=check)

    def start(self):
        self.virsh("start", self.name)

    def state(self):
        return self.virsh("domstate", self.name).stdout.strip()

    def xml(self, inactive=False):
        return self.virsh("dumpxml", *(["--inactive"] if inactive else []), self.name).stdout

    def pid(self):
        text = self.libvirtd.host.read_file("/run/libvirt/qemu/%s.pid" % self.name)
        return int(text.strip()) if text and text.strip().isdigit() else None

    def set_link(self, mac, up):
        """Take the NIC's link down or up (the guest sees its carrier go and come back)."""
        self.virsh("domif-setlink", self.name, mac, "up" if up else "down")

    def renew(self, mac):
        """Make the guest ask for a new lease on NIC ``mac``: a carrier loss and return; return the console mark."""
        since = self.console.mark()
        self.set_link(mac, False)
        self.console.wait_line(r"^KVMB carrier \S+ %s down" % re.escape(mac.lower()), since=since, timeout=30)
        self.set_link(mac, True)
        return since


def bridge_nic(bridge, mac, model="virtio"):
    return "<interface type='bridge'><source bridge='%s'/><mac address='%s'/><model type='%s'/></interface>" % (bridge, mac, model)


def ethernet_nic(tap, mac, model="virtio"):
    """A NIC on an existing tap (made by the tap module): libvirt opens it and leaves it alone."""
    return "<interface type='ethernet'><target dev='%s' managed='no'/><mac address='%s'/><model type='%s'/></interface>" % (tap, mac, model)


def domain_xml(name, console_path, interfaces=(), memory_mib=128, image=None):
    image = image or guest_image()
    esc = xml.sax.saxutils.escape
    return (
        "<domain type='qemu'><name>%s</name><memory unit='MiB'>%d</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel><initrd>%s</initrd><cmdline>%s</cmdline></os>"
        "<features><acpi/></features><on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
        "<on_crash>destroy</on_crash><devices><emulator>%s</emulator>%s"
        "<serial type='file'><source path='%s' append='on'/><target port='0'/></serial>"
        "<memballoon model='none'/></devices></domain>"
        % (esc(name), memory_mib, esc(image["kernel"]), esc(image["initrd"]), CMDLINE, QEMU, "".join(interfaces), esc(console_path))
    )


class Libvirtd:
    """virtlogd and libvirtd inside one lab host."""

    def __init__(self, host):
        self.host = host
        self.lab = host.lab
        self.dir = os.path.join(self.lab.state_dir, "hosts", host.name, "libvirt")

    def _record(self, key, pid, cmd):
        with self.lab._locked():
            state = self.lab._load()
            state["pids"]["%s-%s" % (self.host.name, key)] = {"pid": pid, "cmd": cmd, "host": self.host.name}
            self.lab._save(state)

    def virsh(self, *args, check=True, timeout=120):
        return self.host.run(["virsh", "-q", "-c", URI, *args], check=check, timeout=timeout)

    def running(self):
        return self.virsh("version", check=False, timeout=30).returncode == 0

    def start(self):
        """Start virtlogd, then libvirtd; return once libvirtd answers on qemu:///system."""
        if self.running():
            return self
        for sub in ("lib", "log", "consoles"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        # The cache (QEMU's capabilities, probed in seconds) is shared by the lab's hosts.
        cache = os.path.join(self.lab.state_dir, "libvirt-cache")
        os.makedirs(cache, exist_ok=True)
        for source, target in zip((os.path.join(self.dir, "lib"), os.path.join(self.dir, "log"), cache), LIBVIRT_DIRS):
            self.host.run(["mkdir", "-p", target])
            self.host.run(["mount", "--bind", source, target])
        self.host.write_file("/etc/libvirt/qemu.conf", QEMU_CONF)
        self.host.write_file("/etc/libvirt/libvirtd.conf", LIBVIRTD_CONF)
        # Debian's default network (192.168.122.0/24) must never start in a lab host.
        self.host.run(["rm", "-f", "/etc/libvirt/qemu/networks/autostart/default.xml"])
        self.host.run(["mkdir", "-p", "/run/libvirt"])
        self._daemon("virtlogd", ["virtlogd"], "/run/libvirt/virtlogd-sock")
        self._daemon("libvirtd", ["libvirtd", "-f", "/etc/libvirt/libvirtd.conf"], "/run/libvirt/libvirt-sock")
        _wait(self.running, 60, "libvirtd of %s" % self.host.name)
        return self

    def _daemon(self, key, argv, socket_path):
        log = os.path.join(self.dir, "log", "%s.out" % key)
        with open(log, "ab") as out:
            proc = self.host.popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        self._record(key, proc.pid, key)

        def up():
            if proc.poll() is not None:
                raise kvmblab.LabError("%s of %s exited (%s); see %s" % (key, self.host.name, proc.returncode, log))
            return self.host.run(["test", "-S", socket_path], check=False).returncode == 0

        _wait(up, 60, "%s of %s" % (key, self.host.name))

    def pids(self):
        """PIDs of this host's QEMU processes (libvirt's pid files), libvirtd and virtlogd."""
        script = 'for f in /run/libvirt/qemu/*.pid /run/libvirtd.pid /run/virtlogd.pid; do [ -f "$f" ] && echo "$(cat "$f")"; done'
        out = self.host.run(["sh", "-c", script], check=False).stdout or ""
        return [int(x) for x in out.split() if x.isdigit()]

    def define(self, name, interfaces=(), start=False, memory_mib=128):
        console = os.path.join(self.dir, "consoles", "%s.log" % name)
        with open(console, "w"):
            pass
        path = os.path.join(self.dir, "%s.xml" % name)
        with open(path, "w") as handle:
            handle.write(domain_xml(name, console, interfaces, memory_mib))
        self.virsh("define", path)
        dom = Domain(self, name, Console(console))
        if start:
            dom.start()
        return dom

    def stop(self):
        """Stop every QEMU, libvirtd and virtlogd of this host, by PID."""
        stop_host_vms(self.lab, self.host)


class QemuGuest:
    """A plain QEMU process inside a lab host, on taps that exist already."""

    def __init__(self, host, name, pid, console):
        self.host = host
        self.name = name
        self.pid = pid
        self.console = console

    def __repr__(self):
        return "QemuGuest(%s pid=%d on %s)" % (self.name, self.pid, self.host.name)

    def stop(self):
        kvmblab._stop_pids([self.pid])


def start_qemu(host, name, nics, memory_mib=128):
    """Boot a guest named ``name`` with one virtio NIC per (tap, mac) of ``nics``; return a QemuGuest."""
    image = guest_image()
    vmdir = os.path.join(host.lab.state_dir, "hosts", host.name, "qemu")
    os.makedirs(vmdir, exist_ok=True)
    console = os.path.join(vmdir, "%s.log" % name)
    with open(console, "w"):
        pass
    argv = [
        QEMU,
        "-name",
        "guest=%s,debug-threads=on" % name,
        "-machine",
        "pc,accel=tcg",
        "-m",
        str(memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
        "-serial",
        "file:%s" % console,
        "-kernel",
        image["kernel"],
        "-initrd",
        image["initrd"],
        "-append",
        CMDLINE,
    ]
    for index, (tap, mac) in enumerate(nics):
        argv += ["-netdev", "tap,id=n%d,ifname=%s,script=no,downscript=no" % (index, tap), "-device", "virtio-net-pci,netdev=n%d,mac=%s" % (index, mac)]
    log = os.path.join(vmdir, "%s.out" % name)
    with open(log, "ab") as out:
        proc = host.popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    with host.lab._locked():
        state = host.lab._load()
        state["pids"]["%s-qemu-%s" % (host.name, name)] = {"pid": proc.pid, "cmd": "qemu", "host": host.name}
        host.lab._save(state)
    time.sleep(0.3)
    if proc.poll() is not None:
        with open(log) as handle:
            raise kvmblab.LabError("QEMU %s exited (%s): %s" % (name, proc.returncode, handle.read()[-2000:]))
    return QemuGuest(host, name, proc.pid, Console(console))


def _is_vm_process(pid):
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip() in DAEMONS
    except OSError:
        return False


def stop_host_vms(lab, host_name_or_host):
    """Stop the QEMU, libvirtd and virtlogd processes of one host (by PID), unmount its libvirt directories.

    QEMU first (libvirt's pid files and the recorded PIDs), then the daemons.
    Called by the lab before it removes the host's namespace.
    """
    name = getattr(host_name_or_host, "name", host_name_or_host)
    state = lab._load()
    recorded = {key: rec for key, rec in state.get("pids", {}).items() if rec.get("host") == name}
    pids = []
    record = state.get("hosts", {}).get(name)
    if record and kvmblab._pid_alive(record["pid"]):
        host = kvmblab.LabHost(lab, record)
        script = 'for f in /run/libvirt/qemu/*.pid; do [ -f "$f" ] && echo "$(cat "$f")"; done'
        out = host.run(["sh", "-c", script], check=False).stdout or ""
        pids = [int(x) for x in out.split() if x.isdigit()]
    qemu = [pid for pid in pids + [r["pid"] for r in recorded.values() if r["cmd"] == "qemu"] if _is_vm_process(pid)]
    kvmblab._stop_pids(qemu)
    daemons = [r["pid"] for k, r in sorted(recorded.items()) if r["cmd"] != "qemu" and _is_vm_process(r["pid"])]
    kvmblab._stop_pids(daemons, grace=5.0)
    if recorded:
        with lab._locked():
            state = lab._load()
            for key in recorded:
                state["pids"].pop(key, None)
            lab._save(state)
    return qemu + daemons
