# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bridge module's entry point: parameters -> snapshot -> plan -> apply (unless check mode) -> result.

The layers it wires: _kernel_snapshot reads, _bridge_plan plans and
simulates, _kernel_apply applies (and undoes), _ssh_connection finds the
addresses to keep.

PRIVATE: this module is internal to kvmhost.bridging; it is not part of the
public API and may change without notice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ansible_collections.kvmhost.bridging.plugins.module_utils import _dhcp_client
from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_plan import (
    BridgeSpec,
    bridge_view,
    client_view,
    expiring_addresses,
    plan_bridge,
    simulate,
)
from ansible_collections.kvmhost.bridging.plugins.module_utils._errors import ModuleError
from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import (
    read_snapshot,
    runtime_state,
    state_differences,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from ansible_collections.kvmhost.bridging.plugins.module_utils._bridge_plan import Plan
    from ansible_collections.kvmhost.bridging.plugins.module_utils._dhcp_client import DhcpClient
    from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_apply import ApplyError
    from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_snapshot import Snapshot


def manage_bridge(
    params: dict[str, Any],
    check_mode: bool = False,
    fail_after_step: int | None = None,
    connection: Iterable[str] = (),
    session: Callable[[], Any] | None = None,
    module: Any = None,
    find_clients: Callable[[list[str]], list[DhcpClient]] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """params -> BridgeSpec -> one snapshot (read without pyroute2) -> plan -> apply unless check mode -> result dict.

    ``find_clients`` (interfaces -> DhcpClients; default: from /proc) finds the
    DHCP clients of the ports, which move with their addresses; ``module``
    writes the lease file they take along. ``session`` (default: a pyroute2
    IPRoute) opens the netlink session for the change. ``environ`` (the bridge
    module passes os.environ) is where the KVMB_TEST_FAIL_AFTER_STEP testing
    aid is read when a change is applied; ``fail_after_step`` sets it directly.

    A run with nothing to change never imports _kernel_apply or pyroute2:
    AnsiballZ compiles every module_utils file a module imports on each run,
    so the applier is imported only for a change (the bench floor's no-op).

    Raises ModuleError (nothing changed, or everything restored) on bad input
    and on a failed step.
    """
    spec = BridgeSpec.from_params(params)
    watch = set(spec.ports) | {spec.name}
    before = read_snapshot()
    find_clients = _dhcp_client.find_clients if find_clients is None else find_clients
    clients = find_clients([*spec.ports, spec.name]) if spec.state == "present" else []
    plan = plan_bridge(before, spec, connection, clients)
    on_bridge = [c for c in clients if c.interface == spec.name]
    started = (_dhcp_client.parse_client(step.args["argv"]) for step in plan.steps if step.op == "start_dhcp_client")
    on_bridge += [c for c in started if c is not None]  # the plan starts only command lines parse_client read
    if spec.state == "present" and before.link(spec.name) is not None:
        watch.update(before.ports_of(spec.name))
    shown_ports = tuple(p for p in spec.ports if before.link(p) is not None)
    predicted = simulate(before, plan.steps)
    result: dict[str, Any] = {"changed": plan.changed, "actions": plan.actions}
    result.update(_views(before, predicted, spec.name, shown_ports, on_bridge))
    if plan.warnings:
        result["warnings"] = plan.warnings
    if check_mode or not plan.changed:
        return result
    # Only a change needs the applier and pyroute2.
    from ansible_collections.kvmhost.bridging.plugins.module_utils import _kernel_apply

    if fail_after_step is None and environ is not None:
        fail_after_step = _kernel_apply.fail_after_step_from_env(environ)
    with (session or _kernel_apply.iproute_session)() as ipr:
        try:
            _kernel_apply.apply_plan(_kernel_apply.KernelApplier(ipr, module), plan, fail_after_step=fail_after_step)
        except _kernel_apply.ApplyError as exc:
            raise _failure(exc, before, read_snapshot(), watch, plan) from exc
    result.update(_views(before, read_snapshot(), spec.name, shown_ports, find_clients([spec.name])))
    return result


def _views(before: Snapshot, after: Snapshot, name: str, shown_ports: tuple[str, ...], on_bridge: list[DhcpClient]) -> dict[str, Any]:
    """The result's diff, bridge, expiring_addresses and dhcp_clients for ``after`` (predicted, or read after the change)."""
    return {
        "diff": {
            "before": bridge_view(before, name, shown_ports),
            "after": bridge_view(after, name, shown_ports),
            "before_header": "%s (runtime)" % name,
            "after_header": "%s (runtime)" % name,
        },
        "bridge": bridge_view(after, name),
        "expiring_addresses": expiring_addresses(after, name, on_bridge),
        "dhcp_clients": [client_view(c) for c in on_bridge],
    }


def _failure(exc: ApplyError, before: Snapshot, now: Snapshot, watch: Collection[str], plan: Plan) -> ModuleError:
    from ansible_collections.kvmhost.bridging.plugins.module_utils._kernel_apply import describe_error  # loaded: a step failed

    left = state_differences(runtime_state(before, watch), runtime_state(now, watch))
    restored = not exc.restore_errors and not left
    msg = "Step %d of %d failed (%s): %s." % (exc.step_number, len(plan.steps), exc.step.description if exc.step else "-", describe_error(exc.cause))
    if restored:
        if exc.done:
            msg += " The previous runtime state was restored (%d applied step(s) undone); nothing is changed." % len(exc.done)
        else:
            msg += " Nothing was changed."
    else:
        msg += " Restoring the previous runtime state did not fully succeed: %s. Check the host from its console." % "; ".join(exc.restore_errors + left)
    return ModuleError(
        msg,
        changed=not restored,
        restored=restored,
        failed_step=exc.step_number,
        actions=exc.done,
        restore_errors=exc.restore_errors,
        differences=left,
    )
