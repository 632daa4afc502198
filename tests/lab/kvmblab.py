"""The namespace lab: real test hosts made of network namespaces on this machine.

A lab has an id (0-99) that keeps its names and addresses apart from other
labs on the same machine:

- a LAN namespace ``kvmb-<id>-lan`` with a bridge ``lan0`` at 198.19.0.1/24,
  where dnsmasq hands out DHCP leases (198.19.0.100-250);
- hosts ``kvmb-<id>-h<n>``: each a network namespace with
  - ``eth0``, a veth whose root-side peer is the link ``kvmb-<id>-h<n>``, on a
    /30 of 198.18.0.0/15 (the root side holds the first address, the host the
    second, and the host's default route points at the root side);
  - ``eth1``, a veth plugged into the LAN's bridge (no address: the NIC users
    bridge);
  - an sshd on its eth0 address, started inside a private mount namespace where
    /etc is an overlay over the machine's /etc, so /etc/sysconfig,
    /etc/sysctl.d and the rest are the host's own, /run is the host's own
    tmpfs, and a private UTS namespace with the host's own hostname;
- guests ``kvmb-<id>-h<n>-g<k>``: namespaces plugged into a host through a veth
  whose host end is named ``vnet<k>``, with a DHCP client on demand.

Everything the lab makes is recorded in a state file and found again by name,
so ``down`` removes it all, even after a crash: processes by PID (those inside
the lab's namespaces, and the recorded ones), then namespaces, then links.
Nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import kvmb_nm

MGMT_NET = ipaddress.ip_network("198.18.0.0/16")
LAN_NET = ipaddress.ip_network("198.19.0.0/24")
LAN_GATEWAY = "198.19.0.1"
LAN_DHCP_RANGE = ("198.19.0.100", "198.19.0.250")
MAX_HOSTS = 127
STATE_ROOT = os.environ.get("KVMB_LAB_STATE", "/tmp/kvmb-lab")
# What kvmb_vm.py starts inside hosts (/proc/<pid>/comm): stopped by PID like sshd and dnsmasq.
VM_DAEMONS = ("libvirtd", "virtlogd", "qemu-system-x86")

# What a RHEL 7/8 host ships in /etc/sysconfig/iptables: the rules every
# bridged-VM guide ends up removing.
STOCK_IPTABLES = """\
# sample configuration for iptables service
# you can edit this manually or use system-config-firewall
# please do not ask us to add additional ports/services to this default configuration
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT
-A INPUT -j REJECT --reject-with icmp-host-prohibited
-A FORWARD -j REJECT --reject-with icmp-host-prohibited
COMMIT
"""

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc event script of the kvmb lab: apply the lease, record the address.
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    echo "$ip" > "$KVMB_LEASE_FILE"
    ;;
esac
exit 0
"""


SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


class LabError(RuntimeError):
    """Something in the lab could not be set up or found."""


def _decode(data):
    return None if data is None else data.decode("utf-8", "surrogateescape")


def _run(argv, check=True, capture=True, input=None, timeout=60):
    """Run ``argv``; text in and out, decoded exactly (no newline translation)."""
    proc = subprocess.run(
        argv,
        check=False,
        input=None if input is None else input.encode("utf-8", "surrogateescape"),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        timeout=timeout,
    )
    proc.stdout, proc.stderr = _decode(proc.stdout), _decode(proc.stderr)
    if check and proc.returncode != 0:
        raise LabError("command failed (%s): %s\n%s%s" % (proc.returncode, " ".join(argv), proc.stdout or "", proc.stderr or ""))
    return proc


def _pid_alive(pid):
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None


def _is_lab_process(pid):
    """Whether ``pid`` is (still) one of the daemons the lab starts, zombie or not."""
    try:
        with open("/proc/%d/comm" % pid) as handle:
            return handle.read().strip() in ("sshd", "dnsmasq", "NetworkManager", "dbus-daemon", *VM_DAEMONS)
    except OSError:
        return False


def _stop_pids(pids, grace=2.0):
    """SIGTERM the given PIDs, then SIGKILL those still alive after ``grace``."""
    pids = [p for p in pids if p and p != os.getpid() and _pid_alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        for pid in pids:  # reap our own children so they do not linger as zombies
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    for pid in pids:
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def netns_list():
    out = _run(["ip", "netns", "list"], check=False).stdout or ""
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(name):
    out = _run(["ip", "netns", "pids", name], check=False).stdout or ""
    return [int(x) for x in out.split() if x.isdigit()]


def root_links():
    out = _run(["ip", "-o", "link", "show"], check=False).stdout or ""
    names = []
    for line in out.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            names.append(parts[1].split("@", 1)[0])
    return names


def stop_vms(lab, host_name):
    """Stop the QEMU guests, libvirtd and virtlogd of one host by PID (kvmb_vm.py), QEMU first."""
    state = lab._load()
    if not any(rec.get("host") == host_name for rec in state.get("pids", {}).values()):
        return
    import kvmb_vm  # only labs with VMs need it

    kvmb_vm.stop_host_vms(lab, host_name)


class Guest:
    """A guest namespace plugged into a lab host through a ``vnetN`` port."""

    def __init__(self, host, index, netns, port):
        self.host = host
        self.index = index
        self.netns = netns
        self.port = port

    def __repr__(self):
        return "Guest(%s via %s:%s)" % (self.netns, self.host.name, self.port)

    def run(self, argv, check=True, input=None, timeout=60):
        return _run(["ip", "netns", "exec", self.netns, *argv], check=check, input=input, timeout=timeout)

    def dhcp(self, timeout=8):
        """Ask for a lease on eth0; return the leased IPv4 address or None."""
        lease_file = os.path.join(self.host.lab.state_dir, "lease-%s" % self.netns)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lease_file)
        tries = max(1, int(timeout // 2))
        env = dict(os.environ, KVMB_LEASE_FILE=lease_file)
        argv = [
            "ip",
            "netns",
            "exec",
            self.netns,
            "udhcpc",
            "-i",
            "eth0",
            "-f",
            "-q",
            "-n",
            "-t",
            str(tries),
            "-T",
            "2",
            "-A",
            "1",
            "-s",
            self.host.lab.udhcpc_script,
        ]
        proc = subprocess.run(argv, check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout + 10)
        if proc.returncode == 0 and os.path.exists(lease_file):
            with open(lease_file) as handle:
                return handle.read().strip() or None
        return None

    def address(self):
        out = self.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"], check=False).stdout or ""
        for line in out.splitlines():
            fields = line.split()
            if "inet" in fields:
                return fields[fields.index("inet") + 1].split("/")[0]
        return None

    def ping(self, address, count=1, timeout=2):
        proc = self.run(["ping", "-n", "-c", str(count), "-W", str(timeout), address], check=False, timeout=timeout * count + 10)
        return proc.returncode == 0


class LabHost:
    """A lab host: a network namespace with an sshd in its own mount and UTS namespaces."""

    def __init__(self, lab, record):
        self.lab = lab
        self.index = record["index"]
        self.name = record["name"]
        self.netns = record["netns"]
        self.address = record["address"]
        self.peer_address = record["peer_address"]
        self.pid = record["pid"]
        self.dir = record.get("dir")
        self.services = dict(record.get("services") or {})

    def __repr__(self):
        return "LabHost(%s %s pid=%s)" % (self.name, self.address, self.pid)

    def restart_firewalld(self):
        """Stop the host's firewalld by PID and start it again, as systemctl restart does."""
        self.services = self.lab.restart_firewalld(self)

    def _nsenter(self, argv):
        return ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "--", *argv]

    def run(self, argv, check=True, input=None, timeout=60):
        """Run ``argv`` inside the host (its network, mount and UTS namespaces)."""
        return _run(self._nsenter(argv), check=check, input=input, timeout=timeout)

    def popen(self, argv, **kwargs):
        return subprocess.Popen(self._nsenter(argv), **kwargs)

    def read_file(self, path):
        proc = self.run(["cat", "--", path], check=False)
        return proc.stdout if proc.returncode == 0 else None

    def write_file(self, path, text, mode="0644"):
        self.run(["mkdir", "-p", "--", os.path.dirname(path)])
        self.run(["sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh", path, mode], input=text)

    def add_guest(self, port=None, bridge=None):
        return self.lab.add_guest(self, port=port, bridge=bridge)

    # -- NetworkManager hosts (kvmb_nm) -----------------------------------------
    @property
    def networkmanager(self):
        return bool(self.lab._record(self.name).get("networkmanager"))

    def stop_networkmanager(self):
        """Stop this host's NetworkManager and its bus, by PID (a reboot's first half)."""
        self.lab._set_services(self.name, None)

    def start_networkmanager(self, timeout=60.0):
        """Start this host's bus and NetworkManager again and wait for its start-up to complete."""
        self.lab._set_services(self.name, "start", timeout=timeout)

    @property
    def guests(self):
        return [g for g in self.lab.guests() if g.host.name == self.name]


class Lab:
    """One lab, identified by ``lab_id``; its state lives in STATE_ROOT/<id>."""

    def __init__(self, lab_id=0, python=None, state_root=STATE_ROOT):
        lab_id = int(lab_id)
        if not 0 <= lab_id <= 99:
            raise LabError("lab id must be 0-99, got %s" % lab_id)
        self.id = lab_id
        self.prefix = "kvmb-%d-" % lab_id
        self.state_dir = os.path.join(state_root, str(lab_id))
        self.state_file = os.path.join(self.state_dir, "state.json")
        self.python = python or sys.executable
        self.key = os.path.join(self.state_dir, "id_ed25519")
        self.udhcpc_script = os.path.join(self.state_dir, "udhcpc.script")
        self.dhcp_hosts_path = os.path.join(self.state_dir, "dhcp-hosts")
        # The LAN's default lease time (dnsmasq syntax: 600, 10m, 1h); one host's: set_dhcp_host().
        self.lease_time = os.environ.get("KVMB_LAB_LEASE_TIME", "10m")
        self.inventory_path = os.path.join(self.state_dir, "inventory.yml")

    # -- state ---------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(self.state_dir, exist_ok=True)
        with open(os.path.join(self.state_dir, ".lock"), "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _load(self):
        try:
            with open(self.state_file) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {"id": self.id, "hosts": {}, "guests": {}, "pids": {}, "lan": None}

    def _save(self, state):
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
        os.replace(tmp, self.state_file)

    # -- names and addresses -------------------------------------------------
    @property
    def lan_netns(self):
        return self.prefix + "lan"

    def host_addresses(self, index):
        """(root-side address, host address) of host ``index`` (1-based), each /30."""
        if not 1 <= index <= MAX_HOSTS:
            raise LabError("host index must be 1-%d" % MAX_HOSTS)
        base = int(MGMT_NET.network_address) + self.id * 512 + index * 4
        return str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2))

    def set_dhcp_host(self, mac, address=None, lease_time=None):
        """Give the LAN's DHCP server an entry for ``mac``: a fixed ``address`` and/or a ``lease_time`` in seconds
        (dnsmasq's minimum is 120); None removes the entry. dnsmasq re-reads its hosts file on SIGHUP."""
        mac = mac.lower()
        with self._locked():
            with open(self.dhcp_hosts_path) as handle:
                lines = [line for line in handle.read().splitlines() if line and not line.startswith(mac + ",")]
            fields = [f for f in (address, "%d" % lease_time if lease_time else None) if f]
            if fields:
                lines.append(",".join([mac, *fields]))
            with open(self.dhcp_hosts_path, "w") as handle:
                handle.write("".join(line + "\n" for line in lines))
            pid = self._load().get("pids", {}).get("dnsmasq", {}).get("pid")
        if not pid or not _is_lab_process(pid):
            raise LabError("the lab's dnsmasq does not run")
        os.kill(pid, signal.SIGHUP)

    # -- up ------------------------------------------------------------------
    def up(self, hosts=2, stock_firewall=False):
        """Bring the lab up with (at least) ``hosts`` hosts; return them."""
        with self._locked():
            self._prepare()
            state = self._load()
            if not state.get("lan"):
                state["lan"] = self._make_lan(state)
                self._save(state)
        made = []
        while len(self.hosts()) < hosts:
            made.append(self.add_host(stock_firewall=stock_firewall))
        self.write_inventory()
        return self.hosts()

    def _prepare(self):
        missing = [tool for tool in ("ip", "sshd", "dnsmasq", "udhcpc", "nsenter", "unshare", "ssh-keygen") if not shutil.which(tool)]
        if missing:
            raise LabError("missing tools: %s (run scripts/setup.sh)" % ", ".join(missing))
        if not os.path.exists(self.key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kvmb-lab-%d" % self.id, "-f", self.key])
        if not os.path.exists(self.udhcpc_script):
            with open(self.udhcpc_script, "w") as handle:
                handle.write(UDHCPC_SCRIPT)
            os.chmod(self.udhcpc_script, 0o755)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory

    def _make_lan(self, state):
        ns = self.lan_netns
        if ns in netns_list():
            raise LabError("namespace %s exists but the lab has no record of it: run 'down' first" % ns)
        _run(["ip", "netns", "add", ns])
        batch = [
            "link set lo up",
            "link add lan0 type bridge stp_state 0 forward_delay 0",
            "addr add %s/%d dev lan0" % (LAN_GATEWAY, LAN_NET.prefixlen),
            "link set lan0 up",
        ]
        _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(batch) + "\n")
        leases = os.path.join(self.state_dir, "dnsmasq.leases")
        pidfile = os.path.join(self.state_dir, "dnsmasq.pid")
        with open(self.dhcp_hosts_path, "w"):
            pass  # per-host entries (lease time, address): set_dhcp_host() writes them, dnsmasq reads them on SIGHUP
        argv = [
            "ip",
            "netns",
            "exec",
            ns,
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--interface=lan0",
            "--except-interface=lo",
            "--dhcp-range=%s,%s,255.255.255.0,%s" % (*LAN_DHCP_RANGE, self.lease_time),
            "--dhcp-hostsfile=%s" % self.dhcp_hosts_path,
            "--dhcp-option=option:router,%s" % LAN_GATEWAY,
            "--dhcp-leasefile=%s" % leases,
            "--dhcp-authoritative",
            "--pid-file=%s" % pidfile,
            "--log-facility=%s" % os.path.join(self.state_dir, "dnsmasq.log"),
            "--log-dhcp",
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        state["pids"]["dnsmasq"] = {"pid": proc.pid, "cmd": "dnsmasq"}
        time.sleep(0.2)
        if proc.poll() is not None:
            raise LabError("dnsmasq did not start in %s; see %s" % (ns, os.path.join(self.state_dir, "dnsmasq.log")))
        return {"netns": ns, "gateway": LAN_GATEWAY, "dnsmasq_pid": proc.pid}

    def add_host(self, stock_firewall=False, firewalld=False, networkmanager=False, eth1_method="disabled", ssh_via_lan=False):
        """Add a host; with ``networkmanager`` it runs real NetworkManager (kvmb_nm) on keyfile profiles,
        with ``firewalld`` real firewalld (kvmb_firewalld), each on the host's private system bus.

        ``eth1_method`` is the ipv4 method of a NetworkManager host's eth1 profile
        (``disabled``: no address, as on other hosts; ``auto``: DHCP from the LAN;
        ``manual``: 198.19.0.<20+index>/24). With ``ssh_via_lan`` the inventory
        reaches the host at eth1's address through the LAN namespace (ProxyCommand),
        so the SSH session runs over the NIC a test bridges.
        """
        if ssh_via_lan and not (networkmanager and eth1_method in ("auto", "manual")):
            raise LabError("ssh_via_lan needs a NetworkManager host whose eth1 has an address (eth1_method auto or manual)")
        if firewalld and networkmanager:
            raise LabError("a lab host runs firewalld or NetworkManager, not both yet: each starts its own system bus")
        with self._locked():
            state = self._load()
            if not state.get("lan"):
                raise LabError("the lab is not up: run 'up' first")
            used = {h["index"] for h in state["hosts"].values()}
            index = next(i for i in range(1, MAX_HOSTS + 1) if i not in used)
            record = self._make_host(index, stock_firewall, networkmanager=networkmanager, eth1_method=eth1_method, ssh_via_lan=ssh_via_lan)
            state["hosts"][record["name"]] = record
            self._save(state)
        host = LabHost(self, record)
        self._wait_for_ssh(host)
        if firewalld:
            self._start_firewalld(host)
        if networkmanager:
            kvmb_nm.prepare_mounts(host, os.path.join(record["dir"], "var-lib-nm"))
            self._set_services(host.name, "start")
            kvmb_nm.activate_stock_profiles(host, host.name)
        if ssh_via_lan:
            address = kvmb_nm.ipv4_of(host, "eth1")
            if not address:
                raise LabError("eth1 of %s has no address to reach it by over the LAN" % host.name)
            with self._locked():
                state = self._load()
                state["hosts"][host.name]["lan_address"] = address
                self._save(state)
        self.write_inventory()
        return host

    # -- firewalld hosts (tests/lab/kvmb_firewalld.py) -------------------------
    def _record_services(self, host, services):
        with self._locked():
            state = self._load()
            state["hosts"][host.name]["services"] = services
            self._save(state)
        host.services = dict(services)
        return host.services

    def _start_firewalld(self, host):
        import kvmb_firewalld

        try:
            services = kvmb_firewalld.start(host, host.dir)
        except Exception:
            self.remove_host(host)
            raise
        return self._record_services(host, services)

    def restart_firewalld(self, host):
        import kvmb_firewalld

        services = dict(host.services)
        kvmb_firewalld.stop_firewalld(services.pop("firewalld", None))
        services["firewalld"] = kvmb_firewalld.start_firewalld(host, host.dir)
        return self._record_services(host, services)

    def _record(self, name):
        record = self._load()["hosts"].get(name)
        if record is None:
            raise LabError("no host %s in lab %d" % (name, self.id))
        return record

    def _set_services(self, name, action, timeout=60.0):
        """Stop a NetworkManager host's daemons (by their recorded PIDs), and start them again if ``action``."""
        record = self._record(name)
        kvmb_nm.stop(record.get("services") or {})
        services = {}
        if action == "start":
            services = kvmb_nm.start(LabHost(self, record), os.path.join(record["dir"], "NetworkManager.log"), timeout=timeout)
        with self._locked():
            state = self._load()
            if name in state["hosts"]:
                state["hosts"][name]["services"] = services
                for key in ("NetworkManager", "dbus"):
                    state["pids"].pop("%s-%s" % (name, key), None)
                for key, pid in services.items():
                    state["pids"]["%s-%s" % (name, key)] = {"pid": pid, "cmd": key}
                self._save(state)

    def _make_host(self, index, stock_firewall, networkmanager=False, eth1_method="disabled", ssh_via_lan=False):
        name = "h%d" % index
        ns = self.prefix + name
        peer = ns  # the root-side veth peer: kvmb-<id>-h<n>, at most 12 characters
        peer_addr, addr = self.host_addresses(index)
        if ns in netns_list() or peer in root_links():
            raise LabError("%s exists but the lab has no record of it: run 'down' first" % ns)
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run(["ip", "addr", "add", "%s/30" % peer_addr, "dev", peer])
        _run(["ip", "link", "set", peer, "up"])
        lan_port = "%s" % name
        _run(["ip", "-n", self.lan_netns, "link", "add", lan_port, "type", "veth", "peer", "name", "eth1", "netns", ns])
        _run(["ip", "-n", self.lan_netns, "link", "set", lan_port, "master", "lan0", "up"])
        batch = [
            "link set lo up",
            "addr add %s/30 dev eth0" % addr,
            "link set eth0 up",
            "link set eth1 up",
            "route add default via %s dev eth0" % peer_addr,
        ]
        _run(["ip", "-n", ns, "-batch", "-"], input="\n".join(batch) + "\n")
        hdir = os.path.join(self.state_dir, "hosts", name)
        for sub in ("upper", "work"):
            os.makedirs(os.path.join(hdir, sub), exist_ok=True)
        self._seed_etc(os.path.join(hdir, "upper"), name, ns, addr, peer_addr, stock_firewall, networkmanager, eth1_method, kvmb_nm.lan_address(index))
        hostkey = os.path.join(hdir, "ssh_host_ed25519_key")
        if not os.path.exists(hostkey):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
        config = os.path.join(hdir, "sshd_config")
        with open(config, "w") as handle:
            handle.write(
                "ListenAddress %s\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s.pub\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "UsePAM no\nStrictModes no\nUseDNS no\nMaxStartups 200:30:400\nMaxSessions 200\n"
                "ClientAliveInterval 0\nAcceptEnv LANG LC_*\nSubsystem sftp internal-sftp\n"
                # Over the LAN the address comes by DHCP later; 0.0.0.0 is every address of the host's own namespace.
                % ("0.0.0.0" if ssh_via_lan else addr, hostkey, os.path.join(hdir, "sshd.pid"), self.key)  # noqa: S104
            )
        setup = (
            "mount --make-rprivate / && "
            'mount -t overlay kvmb-etc -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc && '
            "mount -t tmpfs -o mode=0755,size=64m kvmb-run /run && mkdir -p /run/sshd && "
            # dhclient's leases (/var/lib/dhcp) stay in the host's own directory, never in this machine's.
            'if [ -d /var/lib/dhcp ]; then mkdir -p "$1/var-lib-dhcp" && mount --bind "$1/var-lib-dhcp" /var/lib/dhcp; fi && '
            'hostname "$2" && exec /usr/sbin/sshd -D -f "$3" -E "$1/sshd.log"'
        )
        argv = ["ip", "netns", "exec", ns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", setup, "sh", hdir, name, config]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if stock_firewall:
            _run(["ip", "netns", "exec", ns, "iptables-restore"], input=STOCK_IPTABLES)
        return {
            "index": index,
            "name": name,
            "netns": ns,
            "peer": peer,
            "address": addr,
            "peer_address": peer_addr,
            "pid": proc.pid,
            "dir": hdir,
            "lan_port": lan_port,
            "networkmanager": bool(networkmanager),
        }

    @staticmethod
    def _seed_etc(upper, name, ns, addr, gateway, stock_firewall, networkmanager=False, eth1_method="disabled", lan_address=None):
        """Write the host's own /etc files into its overlay's upper layer."""
        scripts = os.path.join(upper, "sysconfig", "network-scripts")
        os.makedirs(scripts, exist_ok=True)
        os.makedirs(os.path.join(upper, "sysctl.d"), exist_ok=True)
        mac0 = _run(["ip", "-n", ns, "-br", "link", "show", "eth0"]).stdout.split()[2]
        mac1 = _run(["ip", "-n", ns, "-br", "link", "show", "eth1"]).stdout.split()[2]
        files = {
            os.path.join(scripts, "ifcfg-eth0"): (
                "DEVICE=eth0\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=none\nIPADDR=%s\nPREFIX=30\nGATEWAY=%s\nONBOOT=yes\n" % (mac0, addr, gateway)
            ),
            os.path.join(scripts, "ifcfg-eth1"): "DEVICE=eth1\nTYPE=Ethernet\nHWADDR=%s\nBOOTPROTO=none\nONBOOT=yes\n" % mac1,
            os.path.join(upper, "hostname"): name + "\n",
            # As on a real host, the host's own name resolves: otherwise every
            # fact gathering (socket.getfqdn) waits for a DNS server the lab
            # cannot reach.
            os.path.join(upper, "hosts"): "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n%s %s\n" % (addr, name),
        }
        if stock_firewall:
            files[os.path.join(upper, "sysconfig", "iptables")] = STOCK_IPTABLES
        if networkmanager:  # keyfiles instead of ifcfg files, as on EL9/EL10
            for device in ("eth0", "eth1"):
                del files[os.path.join(scripts, "ifcfg-" + device)]
            kvmb_nm.seed(upper, name, mac0, addr, gateway, mac1, eth1_method, lan_address)
        for path, text in files.items():
            with open(path, "w") as handle:
                handle.write(text)

    def _wait_for_ssh(self, host, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host.address, 22), timeout=0.5) as sock:
                if sock.recv(4).startswith(b"SSH"):
                    return
            if not _pid_alive(host.pid):
                break
            time.sleep(0.05)
        log = os.path.join(self.state_dir, "hosts", host.name, "sshd.log")
        raise LabError("sshd of %s did not come up on %s:22 (see %s)" % (host.name, host.address, log))

    def remove_host(self, host):
        name = host if isinstance(host, str) else host.name
        stop_vms(self, name)
        with self._locked():
            state = self._load()
            record = state["hosts"].pop(name, None)
            for gname in [g for g, rec in state["guests"].items() if rec["host"] == name]:
                self._remove_netns(state["guests"].pop(gname)["netns"])
            if record:
                services = record.get("services") or {}
                if "firewalld" in services:
                    import kvmb_firewalld

                    kvmb_firewalld.stop(services)
                for key in ("NetworkManager", "dbus"):
                    state["pids"].pop("%s-%s" % (name, key), None)
                self._remove_netns(record["netns"], [record["pid"], *services.values()], root_peer=record["peer"])
                # The LAN end of eth1 would also go away only asynchronously.
                _run(["ip", "-n", self.lan_netns, "link", "del", record["lan_port"]], check=False)
                shutil.rmtree(record["dir"], ignore_errors=True)
            self._save(state)
        self.write_inventory()

    @staticmethod
    def _remove_netns(ns, extra_pids=(), root_peer=None):
        """Stop the namespace's processes, then delete its root-side link and the namespace.

        The root-side veth is deleted explicitly: the kernel destroys the links
        of a deleted namespace asynchronously, and the name must be free at once.
        """
        pids = netns_pids(ns) if ns in netns_list() else []
        _stop_pids(pids + list(extra_pids))
        if root_peer and root_peer in root_links():
            _run(["ip", "link", "del", root_peer], check=False)
        if ns in netns_list():
            _run(["ip", "netns", "del", ns], check=False)

    # -- guests --------------------------------------------------------------
    def add_guest(self, host, port=None, bridge=None):
        with self._locked():
            state = self._load()
            taken = {rec["index"] for rec in state["guests"].values() if rec["host"] == host.name}
            index = next(i for i in range(0, 1000) if i not in taken)
            port = port or "vnet%d" % index
            ns = "%s-g%d" % (host.netns, index)
            _run(["ip", "netns", "add", ns])
            try:
                _run(["ip", "-n", host.netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
                if bridge:
                    _run(["ip", "-n", host.netns, "link", "set", port, "master", bridge])
                _run(["ip", "-n", host.netns, "link", "set", port, "up"])
            except LabError:
                _run(["ip", "netns", "del", ns], check=False)
                raise
            state["guests"][ns] = {"host": host.name, "index": index, "netns": ns, "port": port}
            self._save(state)
        return Guest(host, index, ns, port)

    def guests(self):
        state = self._load()
        hosts = {h.name: h for h in self.hosts()}
        return [Guest(hosts[rec["host"]], rec["index"], rec["netns"], rec["port"]) for rec in state["guests"].values() if rec["host"] in hosts]

    # -- queries -------------------------------------------------------------
    def hosts(self):
        state = self._load()
        return [LabHost(self, rec) for rec in sorted(state["hosts"].values(), key=lambda r: r["index"])]

    def host(self, name):
        for host in self.hosts():
            if host.name == name:
                return host
        raise LabError("no host %s in lab %d" % (name, self.id))

    def inventory(self):
        hosts = {}
        state = self._load()
        for host in self.hosts():
            hosts[host.name] = {
                "ansible_host": host.address,
                "kvmb_netns": host.netns,
                "kvmb_pid": host.pid,
            }
            lan_address = state["hosts"][host.name].get("lan_address")
            if lan_address:  # SSH over the LAN NIC, through the LAN namespace
                relay = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kvmb_relay.py")
                hosts[host.name].update(
                    {
                        "ansible_host": lan_address,
                        "ansible_ssh_common_args": SSH_COMMON_ARGS + " -o ProxyCommand='ip netns exec %s %s %s %%h %%p'" % (self.lan_netns, self.python, relay),
                    }
                )
        return {
            "all": {
                "children": {"lab": {"hosts": hosts}},
                "vars": {
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": self.key,
                    "ansible_python_interpreter": self.python,
                    "ansible_ssh_common_args": SSH_COMMON_ARGS,
                    # Every lab's LAN is 198.19.0.0/24: with one ControlMaster socket directory for all labs, SSH to
                    # 198.19.0.21 of one lab would reuse another lab's open connection to its own 198.19.0.21.
                    "ansible_control_path_dir": os.path.join(self.state_dir, "cp"),
                    "kvmb_lab_id": self.id,
                    "kvmb_lan_gateway": LAN_GATEWAY,
                },
            }
        }

    def write_inventory(self, path=None):
        path = path or self.inventory_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(self.inventory(), handle, indent=2)  # JSON is YAML: Ansible reads it with the yaml plugin
            handle.write("\n")
        os.replace(tmp, path)
        return path

    def status(self):
        state = self._load()
        namespaces = [ns for ns in netns_list() if ns.startswith(self.prefix)]
        links = [link for link in root_links() if link.startswith(self.prefix)]
        procs = []
        for ns in namespaces:
            for pid in netns_pids(ns):
                procs.append({"netns": ns, "pid": pid, "cmd": _cmdline(pid)})
        return {
            "id": self.id,
            "state_dir": self.state_dir,
            "hosts": {name: {"address": rec["address"], "pid": rec["pid"], "alive": _pid_alive(rec["pid"])} for name, rec in state["hosts"].items()},
            "guests": sorted(state["guests"]),
            "namespaces": namespaces,
            "root_links": links,
            "processes": procs,
        }

    # -- down ----------------------------------------------------------------
    def down(self):
        """Remove everything of this lab, recorded or found by name."""
        state = self._load() if os.path.isdir(self.state_dir) else {"hosts": {}, "guests": {}, "pids": {}}
        recorded = [rec["pid"] for rec in state.get("hosts", {}).values()]
        recorded += [rec["pid"] for rec in state.get("pids", {}).values()]
        namespaces = [ns for ns in netns_list() if ns.startswith(self.prefix)]
        # Guests first, then hosts, then the LAN; processes before namespaces.
        namespaces.sort(key=lambda ns: 0 if "-g" in ns[len(self.prefix) :] else 1 if ns != self.lan_netns else 2)
        for name in state.get("hosts", {}):
            with contextlib.suppress(LabError, OSError, subprocess.SubprocessError):
                stop_vms(self, name)
        for ns in namespaces:
            _stop_pids(netns_pids(ns))
        _stop_pids([pid for pid in recorded if _is_lab_process(pid)])
        for link in root_links():
            if link.startswith(self.prefix):
                _run(["ip", "link", "del", link], check=False)
        for ns in namespaces:
            _run(["ip", "netns", "del", ns], check=False)
        # Orphaned daemons are reaped by PID 1; wait until they are gone from
        # the process table so that nothing of the lab shows in ps afterwards.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % pid) and _is_lab_process(pid) for pid in recorded):
            time.sleep(0.1)
        for link in root_links():
            if link.startswith(self.prefix):
                _run(["ip", "link", "del", link], check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        leftovers = self.status()
        if leftovers["namespaces"] or leftovers["root_links"]:
            raise LabError("lab %d left things behind: %s" % (self.id, leftovers))
