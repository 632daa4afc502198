# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkManager over D-Bus with busctl, and the choice of a host's network backend.

- ``choose_backend`` decides, from what a host runs, which backend brings its
  network up (``networkmanager`` or ``initscripts``) and in which profile
  format (``keyfile`` or ``ifcfg``), and says why. Pure; unit-tested.
- ``Bus`` calls NetworkManager's D-Bus API through ``busctl`` (systemd's
  client, on every EL8/EL9/EL10 host): no Python D-Bus binding, no pip package.
  ``parse_busctl`` reads busctl's text output back into Python values.
- ``Checkpoints``: NetworkManager's commit-confirmed mechanism. CheckpointCreate
  with a rollback timeout; CheckpointDestroy confirms; CheckpointRollback, or
  the timeout running out, makes NetworkManager restore the devices and the
  profiles (on disk too).

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

import glob
import os
import shlex
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._names import validate_ifname

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    # run(argv) -> (rc, stdout, stderr), as AnsibleModule.run_command returns them.
    Runner = Callable[[list[str]], tuple[int, str, str]]

NM_BUS = "org.freedesktop.NetworkManager"
NM_PATH = "/org/freedesktop/NetworkManager"
NM_IFACE = "org.freedesktop.NetworkManager"
CHECKPOINT_IFACE = "org.freedesktop.NetworkManager.Checkpoint"
DEVICE_IFACE = "org.freedesktop.NetworkManager.Device"

# NMCheckpointCreateFlags
FLAG_DESTROY_ALL = 0x1
FLAG_DELETE_NEW_CONNECTIONS = 0x2
FLAG_DISCONNECT_NEW_DEVICES = 0x4

# NMRollbackResult
ROLLBACK_RESULTS = {0: "restored", 1: "no such device", 2: "device unmanaged", 3: "failed"}

BACKENDS = ("auto", "networkmanager", "initscripts")
PROFILE_FORMATS = ("auto", "keyfile", "ifcfg")

# Where distributions install NetworkManager's ifcfg-rh settings plugin (EL8, EL9; gone in EL10 and upstream).
IFCFG_PLUGIN_GLOBS = (
    "/usr/lib64/NetworkManager/*/libnm-settings-plugin-ifcfg-rh.so",
    "/usr/lib/NetworkManager/*/libnm-settings-plugin-ifcfg-rh.so",
    "/usr/lib/*/NetworkManager/*/libnm-settings-plugin-ifcfg-rh.so",
)
# network-scripts (the legacy network service): EL7, and EL8's optional package.
NETWORK_SCRIPTS_FILES = (
    "/etc/sysconfig/network-scripts/ifup-eth",
    "/usr/libexec/network-scripts/ifup-eth",
    "/etc/rc.d/init.d/network",
)


# -- the backend decision (pure) -------------------------------------------------
def choose_backend(probe: Mapping[str, Any], backend: str = "auto", profile_format: str = "auto") -> dict[str, Any]:
    """Decide the backend and profile format for one host.

    ``probe`` describes the host: ``nm_running`` (NetworkManager answers on the
    system bus), ``nm_version`` (its version or None), ``nm_ifcfg_plugin`` (its
    ifcfg-rh plugin is installed), ``network_scripts`` (the network service's
    scripts are installed). Returns {backend, profile_format, nm_controlled,
    reason, warnings}; raises ModuleError for a choice the host cannot carry.
    """
    if backend not in BACKENDS:
        raise ModuleError("backend must be one of %s, not %r." % (", ".join(BACKENDS), backend))
    if profile_format not in PROFILE_FORMATS:
        raise ModuleError("profile_format must be one of %s, not %r." % (", ".join(PROFILE_FORMATS), profile_format))
    nm_running = bool(probe.get("nm_running"))
    nm_name = "NetworkManager %s" % probe["nm_version"] if probe.get("nm_version") else "NetworkManager"
    scripts = bool(probe.get("network_scripts"))
    warnings: list[str] = []

    chosen, reason = _choose(backend, nm_running, nm_name, scripts, warnings)

    if chosen == "initscripts":
        if profile_format == "keyfile":
            raise ModuleError(
                "profile_format keyfile needs NetworkManager, but the backend is initscripts (%s). Use "
                "profile_format ifcfg or auto, or start NetworkManager." % reason
            )
        return {"backend": chosen, "profile_format": "ifcfg", "nm_controlled": False, "reason": reason, "warnings": warnings}

    if profile_format == "ifcfg":
        if not probe.get("nm_ifcfg_plugin"):
            raise ModuleError(
                "profile_format ifcfg was chosen, but %s on this host has no ifcfg-rh plugin and does not read "
                "ifcfg files (EL10, Fedora 39+, Debian and upstream NetworkManager read keyfiles only). Use "
                "profile_format keyfile or auto." % nm_name
            )
        fmt = "ifcfg"
        reason += "; ifcfg files were chosen (read by NetworkManager's ifcfg-rh plugin, written without NM_CONTROLLED=no)"
    else:
        fmt = "keyfile"
        reason += "; profiles are NetworkManager keyfiles (%s)" % ("chosen explicitly" if profile_format == "keyfile" else "the default on NetworkManager")
    return {"backend": chosen, "profile_format": fmt, "nm_controlled": True, "reason": reason, "warnings": warnings}


def _choose(backend: str, nm_running: bool, nm_name: str, scripts: bool, warnings: list[str]) -> tuple[str, str]:
    """(the backend, why): NetworkManager when it runs (auto) or is chosen, else initscripts."""
    if backend == "auto":
        if nm_running:
            chosen = "networkmanager"
            reason = "%s is running (it answers on the system bus), so it brings the network up" % nm_name
        else:
            chosen = "initscripts"
            if scripts:
                reason = "NetworkManager is not running and network-scripts is installed, so the network service brings the network up"
            else:
                reason = (
                    "NetworkManager is not running; network-scripts was not found either, so the ifcfg files are written for the network service as on EL7/EL8"
                )
                warnings.append(
                    "Neither NetworkManager nor network-scripts was found: nothing may apply the ifcfg files at boot. "
                    "Install network-scripts (EL8) or start NetworkManager (systemctl enable --now NetworkManager)."
                )
    elif backend == "networkmanager":
        if not nm_running:
            raise ModuleError(
                "backend networkmanager was chosen, but NetworkManager is not running on this host (it does not answer "
                "on the system bus). Start it (systemctl enable --now NetworkManager), or choose backend initscripts "
                "or auto."
            )
        chosen = "networkmanager"
        reason = "backend networkmanager was chosen explicitly (%s is running)" % nm_name
    else:
        chosen = "initscripts"
        reason = "backend initscripts was chosen explicitly"
        if nm_running:
            warnings.append(
                "backend initscripts on a host where %s runs: the profiles are written with NM_CONTROLLED=no, so "
                "NetworkManager leaves the bridge and its NIC alone, and nothing brings them up at boot unless the "
                "network service does (EL9 and EL10 have no network service)." % nm_name
            )
    return chosen, reason


# -- busctl ------------------------------------------------------------------------
def _take(sig: str, tokens: Sequence[str], pos: int) -> tuple[Any, int]:
    """Read one value of D-Bus type ``sig`` (a single complete type) from ``tokens`` at ``pos``."""
    head = sig[0]
    if head in "sog":
        return tokens[pos], pos + 1
    if head == "b":
        return tokens[pos] == "true", pos + 1
    if head in "ynqiuxtdh":
        return (float(tokens[pos]) if head == "d" else int(tokens[pos])), pos + 1
    if head == "a":
        count, pos = int(tokens[pos]), pos + 1
        inner = sig[1:]
        if inner.startswith("{"):
            key_sig, value_sig = inner[1], inner[2:-1]
            out: dict[Any, Any] = {}
            for _index in range(count):
                key, pos = _take(key_sig, tokens, pos)
                out[key], pos = _take(value_sig, tokens, pos)
            return out, pos
        items: list[Any] = []
        for _index in range(count):
            item, pos = _take(inner, tokens, pos)
            items.append(item)
        return items, pos
    raise ValueError("busctl output of type %s is not supported" % sig)


def _split_types(sig: str) -> list[str]:
    """Split a D-Bus signature into its complete types: 'oa{su}' -> ['o', 'a{su}']."""
    types: list[str] = []
    i = 0
    while i < len(sig):
        j = i
        while sig[j] == "a":
            j += 1
        if sig[j] == "{":
            depth = 0
            while True:
                depth += {"{": 1, "}": -1}.get(sig[j], 0)
                j += 1
                if depth == 0:
                    break
        else:
            j += 1
        types.append(sig[i:j])
        i = j
    return types


def parse_busctl(text: str) -> list[Any]:
    """busctl's text output ('o "/path"', 'a{su} 1 "/d/1" 0', 'ao 0') -> list of values (one per type)."""
    tokens = shlex.split(text.strip())
    if not tokens:
        return []
    values: list[Any] = []
    pos = 1
    for sig in _split_types(tokens[0]):
        value, pos = _take(sig, tokens, pos)
        values.append(value)
    return values


class Bus:
    """NetworkManager's D-Bus API through busctl. ``run(argv)`` returns (rc, stdout, stderr)."""

    def __init__(self, run: Runner, busctl: str = "busctl") -> None:
        self._run = run
        self.busctl = busctl

    def _busctl(self, argv: Sequence[str], what: str) -> list[Any]:
        rc, out, err = self._run([self.busctl, "--system", *argv])
        if rc != 0:
            raise BusCallError(what, (err or out or "").strip())
        return parse_busctl(out)

    def call(self, path: str, iface: str, method: str, signature: str = "", *args: object, dest: str = NM_BUS) -> list[Any]:
        argv = ["call", dest, path, iface, method]
        if signature:
            argv += [signature, *[str(a) for a in args]]
        return self._busctl(argv, "%s.%s" % (iface.rsplit(".", 1)[-1], method))

    def get(self, path: str, iface: str, prop: str, dest: str = NM_BUS) -> Any:
        values = self._busctl(["get-property", dest, path, iface, prop], "%s property %s" % (iface.rsplit(".", 1)[-1], prop))
        return values[0] if values else None

    def name_has_owner(self, name: str = NM_BUS) -> bool:
        try:
            values = self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", name, dest="org.freedesktop.DBus")
        except BusCallError:
            return False
        return bool(values and values[0])


class BusCallError(ModuleError):
    """A D-Bus call failed; ``error`` is busctl's message."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__("NetworkManager's D-Bus call %s failed: %s" % (what, error or "no message"))
        self.what = what
        self.error = error


# -- the probe (reads the host) ------------------------------------------------------
def probe_host(bus: Bus, exists: Callable[[str], bool] = os.path.exists, globber: Callable[[str], list[str]] = glob.glob) -> dict[str, Any]:
    """What the host runs: the input of choose_backend."""
    running = bus.name_has_owner()
    version = None
    if running:
        try:
            version = bus.get(NM_PATH, NM_IFACE, "Version")
        except BusCallError:
            version = None
    return {
        "nm_running": running,
        "nm_version": version,
        "nm_ifcfg_plugin": any(globber(pattern) for pattern in IFCFG_PLUGIN_GLOBS),
        "network_scripts": any(exists(path) for path in NETWORK_SCRIPTS_FILES),
    }


# -- checkpoints -------------------------------------------------------------------------
def checkpoint_flags(delete_new_connections: bool = True, disconnect_new_devices: bool = True, destroy_all: bool = False) -> int:
    return (
        (FLAG_DELETE_NEW_CONNECTIONS if delete_new_connections else 0)
        | (FLAG_DISCONNECT_NEW_DEVICES if disconnect_new_devices else 0)
        | (FLAG_DESTROY_ALL if destroy_all else 0)
    )


def rollback_restored(results: Mapping[str, int], names: Mapping[str, str]) -> dict[str, str]:
    """CheckpointRollback's {device path: result code} as {device name: result in words}."""
    return {names.get(path, path.rsplit("/", 1)[-1]): ROLLBACK_RESULTS.get(code, "result %s" % code) for path, code in results.items()}


def rollback_summary(restored: Mapping[str, str]) -> str:
    """{'eth0': 'restored', 'breth0': 'restored'} -> 'breth0 restored, eth0 restored'."""
    return ", ".join("%s %s" % (name, word) for name, word in sorted(restored.items()))


class Checkpoints:
    """Create, list, confirm (destroy) and roll back NetworkManager checkpoints."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def require_running(self) -> None:
        if not self.bus.name_has_owner():
            raise ModuleError(
                "NetworkManager is not running on this host (it does not answer on the system bus), so it "
                "cannot take a checkpoint. Start it (systemctl enable --now NetworkManager), or bridge this host "
                "with backend initscripts."
            )

    def device_path(self, name: str) -> str:
        try:
            path: str = self.bus.call(NM_PATH, NM_IFACE, "GetDeviceByIpIface", "s", name)[0]  # signature o
            return path
        except BusCallError as exc:
            raise ModuleError("NetworkManager has no device %s (%s). Name a device that `nmcli device` lists." % (name, exc.error)) from None

    def device_name(self, path: str) -> str:
        try:
            name: str = self.bus.get(path, DEVICE_IFACE, "Interface")  # signature s
            return name
        except BusCallError:
            return path.rsplit("/", 1)[-1]

    def list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in self.bus.get(NM_PATH, NM_IFACE, "Checkpoints") or []:
            try:
                devices = self.bus.get(path, CHECKPOINT_IFACE, "Devices") or []
                out.append(
                    {
                        "path": path,
                        "rollback_timeout": self.bus.get(path, CHECKPOINT_IFACE, "RollbackTimeout"),
                        "created": self.bus.get(path, CHECKPOINT_IFACE, "Created"),
                        "devices": [self.device_name(dev) for dev in devices],
                    }
                )
            except BusCallError:
                continue  # destroyed between the two reads
        return out

    def create(self, devices: Sequence[str], timeout: int, flags: int) -> str:
        names = [validate_ifname(name, "devices") for name in devices]  # every name before the first bus call
        paths = [self.device_path(name) for name in names]
        try:
            path: str = self.bus.call(NM_PATH, NM_IFACE, "CheckpointCreate", "aouu", len(paths), *paths, int(timeout), int(flags))[0]  # signature o
            return path
        except BusCallError as exc:
            raise ModuleError(
                "NetworkManager refused the checkpoint: %s. If an earlier run left a checkpoint, confirm it with "
                "action=destroy or roll it back with action=rollback (action=status lists them)." % exc.error
            ) from None

    def require(self, path: str) -> str:
        paths = self.bus.get(NM_PATH, NM_IFACE, "Checkpoints") or []
        if path not in paths:
            raise ModuleError(
                "The checkpoint %s no longer exists: NetworkManager already rolled it back when its timeout ran out "
                "(or it was confirmed or rolled back before). The change it guarded was undone." % path,
                checkpoint_gone=True,
            )
        return path

    def adjust(self, path: str, timeout: int) -> None:
        """Restart the rollback countdown: NetworkManager rolls back ``timeout`` seconds from now."""
        self.require(path)
        self.bus.call(NM_PATH, NM_IFACE, "CheckpointAdjustRollbackTimeout", "ou", path, int(timeout))

    def destroy(self, path: str) -> None:
        self.require(path)
        self.bus.call(NM_PATH, NM_IFACE, "CheckpointDestroy", "o", path)

    def rollback(self, path: str) -> tuple[dict[str, int], dict[str, str]]:
        self.require(path)
        # Names first: a device the checkpoint deletes (a new bridge) has none afterwards.
        names = {dev: self.device_name(dev) for dev in self.bus.get(path, CHECKPOINT_IFACE, "Devices") or []}
        results: dict[str, int] = self.bus.call(NM_PATH, NM_IFACE, "CheckpointRollback", "o", path)[0]  # signature a{ou}
        return results, names
