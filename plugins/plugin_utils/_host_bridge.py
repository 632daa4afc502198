# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host_bridge action's decisions: which NIC, what the files and the runtime need, and the messages.

Pure functions of the host's facts, what the modules read and returned, and the
role's variables, so that unit tests reach every decision and every message.
The action plugin (plugins/action/host_bridge.py) only runs the modules.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import re

# Keys of the NIC's IP configuration that move to the bridge's file as they are.
CARRY_KEYS = (
    "DEFROUTE",
    "DOMAIN",
    "IPV6INIT",
    "IPV6_AUTOCONF",
    "IPV6ADDR",
    "IPV6ADDR_SECONDARIES",
    "IPV6_DEFAULTGW",
    "PEERDNS",
    "PEERNTP",
    "ZONE",
    "DHCP_HOSTNAME",
    "PERSISTENT_DHCLIENT",
    "IPV4_FAILURE_FATAL",
    "IPV6_FAILURE_FATAL",
)
# Keys that leave the NIC's file when it becomes a port.
_PORT_DROPS = re.compile(r"^((IPADDR|PREFIX|NETMASK|GATEWAY)[0-9]*|DNS[0-9]+|IPV6ADDR.*|%s)$" % "|".join(CARRY_KEYS))
# Ports that a guest added (taps), not the bridge's NIC.
_GUEST_PORT = re.compile(r"^(vnet|tap|vif|macvtap)")

# The names of the steps, as the messages say them.
STEP_FILES = "Write the ifcfg files"
STEP_START = "Start the guard's countdown"
STEP_BRIDGE = "Bridge the NIC at runtime, moving its addresses and routes"
STEP_IP = "Set the static addresses and the default route of the bridge at runtime"
HINT = "Check host_bridge_nic, host_bridge_bootproto, host_bridge_addresses and host_bridge_gateway."


def _facts_of(facts, device):
    """The facts of one interface (Ansible keys them with - turned into _), or {}."""
    return facts.get(str(device).replace("-", "_")) or {}


def _unique(items):
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _ipv4_of(device_facts):
    """The IPv4 addresses of an interface's facts, as address/prefix."""
    records = ([device_facts["ipv4"]] if device_facts.get("ipv4") else []) + list(device_facts.get("ipv4_secondaries") or [])
    return ["%s/%s" % (rec["address"], rec["prefix"]) for rec in records if rec.get("address")]


def variable_problems(bootproto, addresses, gateway, stp, forward_delay):
    """What is wrong with the variables that go together (a list of sentences)."""
    problems = []
    if bootproto == "static" and not addresses:
        problems.append("host_bridge_bootproto: static needs host_bridge_addresses, like [198.18.5.10/24].")
    if bootproto != "static" and (addresses or gateway):
        problems.append("host_bridge_addresses and host_bridge_gateway are used only with host_bridge_bootproto: static.")
    if stp and not 2 <= int(forward_delay) <= 30:
        problems.append("With host_bridge_stp: true the kernel needs host_bridge_forward_delay between 2 and 30 seconds.")
    return problems


def route_device(facts):
    """The interface of the default route (IPv4, else IPv6), or ''."""
    return (facts.get("default_ipv4") or {}).get("interface") or (facts.get("default_ipv6") or {}).get("interface") or ""


def resolve_nic(facts, nic, bridge):
    """The NIC to bridge: ``nic`` unless it is ``auto``; then the default route's, or the bridge's own NIC on a rerun."""
    if nic != "auto":
        return nic
    route_dev = route_device(facts)
    if route_dev != bridge:
        return route_dev
    bridge_now = _facts_of(facts, bridge)
    ports = list(bridge_now.get("interfaces") or [])
    # The bridge has its NIC's MAC (this role gives it that); guests' taps do not.
    same_mac = [port for port in ports if _facts_of(facts, port).get("macaddress") == bridge_now.get("macaddress", "-")]
    others = [port for port in ports if not _GUEST_PORT.match(port)]
    return (same_mac + others or [""])[0]


def nic_problems(facts, nic_option, nic, bridge):
    """What is wrong with the NIC (a list of sentences, the first one is the message)."""
    route_dev = route_device(facts)
    route_facts = _facts_of(facts, route_dev) if route_dev else {}
    nic_facts = _facts_of(facts, nic) if nic else {}
    auto = nic_option == "auto"
    interfaces = list(facts.get("interfaces") or [])
    problems = []
    if auto and not route_dev:
        problems.append("This host has no default route to find the NIC by; set host_bridge_nic.")
    if auto and route_dev != bridge and route_facts.get("type") == "bridge":
        problems.append(
            "The default route goes through the bridge %s, not %s. Set host_bridge_name: %s to keep that bridge, "
            "or host_bridge_nic to bridge another NIC." % (route_dev, bridge, route_dev)
        )
    if not nic and route_dev:
        problems.append(
            "The default route goes through %s, but none of its ports (%s) looks like its NIC; set host_bridge_nic."
            % (bridge, ", ".join(route_facts.get("interfaces") or []) or "none")
        )
    if nic == bridge:
        problems.append("host_bridge_nic names the bridge itself (%s); name the NIC to bridge." % bridge)
    if nic and nic not in interfaces:
        problems.append("The NIC %s does not exist on this host; it has %s." % (nic, ", ".join(sorted(interfaces))))
    if nic != bridge and nic_facts.get("type") == "bridge":
        problems.append("%s is a bridge; Linux does not put a bridge into a bridge. Name the NIC to bridge." % nic)
    return problems


def _prefix_of(values, suffix):
    prefix = values.get("PREFIX" + suffix) or ""
    netmask = values.get("NETMASK" + suffix) or ""
    if not prefix and netmask:
        prefix = str(sum(bin(int(part)).count("1") for part in netmask.split(".") if part.isdigit()))
    return prefix or "24"


def file_addresses(values):
    """IPADDR/PREFIX (or NETMASK), and IPADDR0..n/PREFIX0..n, as address/prefix."""
    addresses = []
    for suffix in [""] + [str(n) for n in range(256)]:
        address = values.get("IPADDR" + suffix) or ""
        if address:
            addresses.append("%s/%s" % (address, _prefix_of(values, suffix)))
    return addresses


def _file_values(ifcfg_read, device):
    """What a device's file says, as NetworkManager reads it; {} when there is none or it names only the DEVICE."""
    values = ((ifcfg_read or {}).get(device) or {}).get("variables") or {}
    return values if set(values) - {"DEVICE"} else {}


def plan(facts, ifcfg_read, nic, bridge, bootproto, addresses, gateway, dns, stp, forward_delay, persist, config_dir):
    """The ifcfg files (as ifcfg module arguments) and the runtime ``ip -batch`` lines the bridge needs.

    ``ifcfg_read`` is ifcfg_info's RV(ifcfg) for the NIC and the bridge ({} without files).
    """
    nic_facts = _facts_of(facts, nic)
    route_dev = route_device(facts)
    runtime_ipv4 = _ipv4_of(_facts_of(facts, bridge)) + _ipv4_of(nic_facts)
    nic_values = _file_values(ifcfg_read, nic)
    bridge_values = _file_values(ifcfg_read, bridge)
    # After the first run the NIC's file names the bridge, and the bridge's file has what the NIC had.
    source = bridge_values if nic_values.get("BRIDGE", "") == bridge and bridge_values else nic_values
    from_file = file_addresses(source)
    boot, keyword = _boot_protocol(bootproto, source, nic_facts, from_file)
    if bootproto == "static":
        boot_addresses, boot_gateway = list(addresses), gateway
    elif bootproto == "dhcp":
        boot_addresses, boot_gateway = [], ""
    elif source:
        boot_addresses, boot_gateway = from_file, source.get("GATEWAY") or ""
    else:
        boot_addresses = _ipv4_of(nic_facts)
        boot_gateway = ((facts.get("default_ipv4") or {}).get("gateway") or "") if route_dev in (nic, bridge) else ""
    mac = nic_facts.get("macaddress")
    bridge_file = _bridge_file(bridge, source, boot, keyword, boot_addresses, boot_gateway, dns, mac, stp, forward_delay, config_dir)
    nic_file = {
        "device": nic,
        "bridge": bridge,
        "bootproto": "none",
        "onboot": True,
        "nm_controlled": False,
        "hwaddr": mac,
        "settings": {key: None for key in nic_values if _PORT_DROPS.match(key)},
        "config_dir": config_dir,
    }
    ip_batch = _ip_batch(facts, route_dev, runtime_ipv4, nic, bridge, bootproto, addresses, gateway)
    # The bridge's file first: the NIC's file never names a bridge that has no file.
    return {
        "what": "bridging %s into %s" % (nic, bridge),
        "files": ["%s/ifcfg-%s" % (config_dir, bridge), "%s/ifcfg-%s" % (config_dir, nic)] if persist else [],
        "ifcfg": [bridge_file, nic_file] if persist else [],
        "bridge": {"name": bridge, "ports": [nic], "stp": bool(stp), "forward_delay": int(forward_delay), "mac": "inherit", "migrate_addresses": True},
        "ip_batch": ip_batch,
    }


def _boot_protocol(bootproto, source, nic_facts, from_file):
    """(the boot protocol the bridge gets, BOOTPROTO as written) for the asked ``bootproto`` and the file ``source``."""
    inherited = str(source.get("BOOTPROTO") or "none").lower()
    if bootproto != "inherit":
        boot = bootproto
    elif not source:
        boot = "static" if _ipv4_of(nic_facts) else "none"
    elif inherited in ("dhcp", "bootp"):
        boot = "dhcp"
    else:
        boot = "static" if from_file else "none"
    # BOOTPROTO as written: an inherited static address keeps the NIC's spelling (none or static).
    keyword = inherited if bootproto == "inherit" and boot == "static" and inherited in ("none", "static") else boot
    return boot, keyword


def _bridge_file(bridge, source, boot, keyword, boot_addresses, boot_gateway, dns, mac, stp, forward_delay, config_dir):
    """The ifcfg module arguments of the bridge's file."""
    boot_dns = list(dns) if dns else [source[key] for key in sorted(k for k in source if re.match(r"^DNS[0-9]+$", k)) if isinstance(source[key], str)]
    static_gateway = boot == "static" and bool(boot_gateway)
    settings = {key: value for key, value in source.items() if key in CARRY_KEYS and isinstance(value, str)}
    if not static_gateway:
        settings["GATEWAY"] = None
    bridge_file = {
        "device": bridge,
        "type": "bridge",
        "bootproto": keyword,
        "onboot": True,
        "nm_controlled": False,
        "macaddr": mac,
        "stp": bool(stp),
        "delay": int(forward_delay),
        "addresses": boot_addresses if boot == "static" else [],
        "dns": boot_dns,
        "settings": settings,
        "config_dir": config_dir,
    }
    if static_gateway:
        bridge_file["gateway"] = boot_gateway
    return bridge_file


def _ip_batch(facts, route_dev, runtime_ipv4, nic, bridge, bootproto, addresses, gateway):
    """The runtime ``ip -batch`` lines: with static addresses, the bridge gets exactly ``addresses`` and ``gateway``."""
    ip_batch = []
    if bootproto == "static":
        ip_batch += ["address replace %s dev %s" % (a, bridge) for a in _unique(addresses) if a not in runtime_ipv4]
        if gateway and ((facts.get("default_ipv4") or {}).get("gateway", "") != gateway or route_dev not in (nic, bridge)):
            ip_batch.append("route replace default via %s dev %s" % (gateway, bridge))
        ip_batch += ["address del %s dev %s" % (a, bridge) for a in _unique(runtime_ipv4) if a not in addresses]
    return ip_batch


def needed(file_probes, bridge_probe, ip_batch):
    """What the change does (a list of steps; empty when the host is bridged as asked), from the check-mode probes."""
    steps = ["write %s" % probe.get("path") for probe in file_probes if probe.get("changed_keys")]
    return steps + list(bridge_probe.get("actions") or []) + list(ip_batch)


def guard_id(inventory_hostname):
    """The guard's id for a host: host_bridge-<inventory name> in the guard's alphabet."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(inventory_hostname))
    # As Jinja's truncate(100, true, '') did in the role: a name up to 105 characters stays whole.
    return "host_bridge-" + (name if len(name) <= 105 else name[:100])


def step_timeout(rollback_timeout):
    """The seconds a step of the change may take before the role takes it as one that cut the connection."""
    return max(int(rollback_timeout) // 2, 5)


def step_failure(step, result=None, timed_out=None, lost=False):
    """Why a step failed, for the messages: it failed, it did not return in time, or it lost the connection."""
    if timed_out:
        return "'%s' did not return within %ss, so it probably cut the connection" % (step, timed_out)
    if lost:
        return "'%s' lost the connection" % step
    result = result or {}
    text = result.get("stderr") or result.get("msg") or "no message"
    return "'%s' failed: %s" % (step, str(text).strip())


def rolled_back(outcome):
    """Whether the outcome is not a confirmed change (the play then fails)."""
    return not (outcome or {}).get("confirmed") or bool((outcome or {}).get("rolled_back"))


def rollback_message(host, what, files, rollback_timeout, failure, cut, decision, outcome):
    """The failure message after a guarded change that was not confirmed: why, what the guard did, and what to check.

    ``failure`` is step_failure()'s text or ''; ``cut`` whether the host was unreachable after the change (or the
    confirmation came only after the guard had rolled back); ``decision`` the confirm or rollback result.
    """
    decision = decision or {}
    outcome = outcome or {}
    if failure:
        why = "%s failed, %s%s" % (what, failure, " and then the host was unreachable" if cut else "")
    elif cut:
        why = "lost connectivity after %s: no fresh SSH connection confirmed the change within %ss" % (what, rollback_timeout)
    else:
        why = "the confirmation of %s failed: %s" % (what, decision.get("msg") or "no message")
    if outcome.get("rolled_back"):
        steps = "; ".join((outcome.get("restored_runtime") or {}).get("steps") or []) or "no runtime step needed"
        done = "the guard restored the previous runtime state%s at %s (%s)." % (" and ifcfg files" if files else "", outcome.get("finished_at"), steps)
        errors = outcome.get("errors") or []
        done += (" Parts of the restore failed: %s." % "; ".join(errors)) if errors else " The host is reachable again and runs as before."
    else:
        done = "the guard did not roll back: %s" % (outcome.get("msg") or "no outcome")
    return "host_bridge: %s: %s; %s %s" % (host, why, done, HINT)


def cut_off(decision_unreachable, decision):
    """Whether the host was cut off: unreachable after the change, or back only after the guard had rolled back."""
    decision = decision or {}
    return bool(decision_unreachable) or (bool(decision.get("failed")) and bool(decision.get("rolled_back") or (decision.get("last") or {}).get("rolled_back")))


def unreachable_message(host, what, rollback_timeout, backend="guard"):
    """The message when the host did not answer again after the rollback should have brought it back."""
    restorer = (
        "NetworkManager should have rolled back its checkpoint %ss after it was taken" % rollback_timeout
        if backend == "networkmanager"
        else "its guard should have restored the previous state %ss after the change" % rollback_timeout
    )
    return "host_bridge: %s lost connectivity after %s and did not answer within %ss, although %s. Check the host from its console." % (
        host,
        what,
        int(rollback_timeout) + 60,
        restorer,
    )


def unguarded_message(host, what, failure):
    """The message after a failed step of a change without the guard (host_bridge_rollback_timeout 0)."""
    return "host_bridge: %s: %s failed, %s (host_bridge_rollback_timeout is 0: nothing was rolled back). %s" % (host, what, failure, HINT)


def pyroute2_message(python):
    return (
        "The host's Python (%s) cannot import pyroute2 and host_bridge_install_pyroute2 is false. Install "
        "python3-pyroute2 (EPEL on EL8), or set host_bridge_install_pyroute2: true." % python
    )


# NetworkManager hosts: the steps, as the messages say them.
NM_STEP_WRITE = "Write the profiles"
NM_STEP_ADJUST = "Start the checkpoint's countdown"
NM_STEP_ACTIVATE = "Activate the port (NetworkManager brings the bridge up with it)"
_KEYFILE_KEYS = ("controller", "cloned_mac_address", "autoconnect", "stp", "forward_delay", "ipv4", "ipv6")


def keyfile_args(item, config_dir, reload=False):
    """nm_keyfile's arguments for one profile of nm_bridge_plan's RV(keyfiles)."""
    args = {"name": item["name"], "type": item["type"], "interface": item["interface"], "settings": item.get("settings") or {}, "config_dir": config_dir}
    args.update({key: item[key] for key in _KEYFILE_KEYS if item.get(key) is not None})
    if reload:
        args["reload"] = True
    return args


def nm_needed(plan_result, probes):
    """Whether NetworkManager must change anything: the devices do not run the profiles, or a profile changes."""
    return not plan_result.get("runtime_ok") or any(probe.get("changed_keys") for probe in probes)


def activation_argv(port_uuid, rollback_timeout):
    """nmcli's activation of the port (NetworkManager brings the bridge up with it)."""
    return ["nmcli", "--wait", str(max(int(rollback_timeout) // 2, 30)), "connection", "up", "uuid", port_uuid]


def activation_failure(port_profile, result):
    """Why the activation failed, for the rollback's message."""
    text = (result or {}).get("stderr") or (result or {}).get("msg") or "no message"
    return "NetworkManager could not activate %s: %s" % (port_profile, str(text).strip())


def nm_unguarded_message(host, what, step, result):
    """The message after a failed step through NetworkManager without a checkpoint (host_bridge_rollback_timeout 0)."""
    return "host_bridge: %s: %s failed at '%s': %s (host_bridge_rollback_timeout is 0: nothing was rolled back)." % (
        host,
        what,
        step,
        str((result or {}).get("msg") or (result or {}).get("stderr") or "no message").strip(),
    )
