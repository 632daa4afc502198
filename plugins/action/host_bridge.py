# Copyright: (c) 2026, kvmhost.bridging contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""host_bridge: plan, arm the guard, apply, confirm over a fresh connection, and report, in one task.

The decisions and the messages are in plugins/plugin_utils/_host_bridge.py; this
plugin runs the collection's modules on the host in their order. Nothing here
uses async: a step that may cut the connection runs with a time limit, and the
confirmation goes over a fresh connection (the connection is reset, as
ansible.builtin.reboot does), so the flow is the same under any strategy
(linear, free, Mitogen's) over ssh or paramiko.
"""

from __future__ import annotations

import signal
import time

from ansible.errors import AnsibleConnectionFailure
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.kvmhost.bridging.plugins.action.guard import connection_problem
from ansible_collections.kvmhost.bridging.plugins.plugin_utils import _host_bridge as hb

ARGUMENT_SPEC = {
    "name": {"type": "str", "default": "breth0"},
    "nic": {"type": "str", "default": "auto"},
    "bootproto": {"type": "str", "default": "inherit", "choices": ["inherit", "dhcp", "static"]},
    "addresses": {"type": "list", "elements": "str", "default": []},
    "gateway": {"type": "str", "default": ""},
    "dns": {"type": "list", "elements": "str", "default": []},
    "stp": {"type": "bool", "default": False},
    "forward_delay": {"type": "int", "default": 0},
    "persist": {"type": "bool", "default": True},
    "rollback_timeout": {"type": "int", "default": 60},
    "config_dir": {"type": "path", "default": "/etc/sysconfig/network-scripts"},
    "install_pyroute2": {"type": "bool", "default": True},
    "backend": {"type": "str", "default": "initscripts", "choices": ["initscripts", "networkmanager"]},
    "nm_config_dir": {"type": "path", "default": "/etc/NetworkManager/system-connections"},
}

PREFIX = "kvmhost.bridging."
display = Display()


class _StepTimeout(Exception):
    """A step did not return within its time limit."""


class _Lost(Exception):
    """The connection failed during a step."""


class _Limit:
    """A time limit for a block: SIGALRM raises _StepTimeout after ``seconds`` and ``expired`` says it did.

    A connection that waits in its own loop may turn the exception into its own (Mitogen raises its TimeoutError),
    so the caller asks ``expired``. An alarm set before (the task's own timeout) is set again afterwards.
    """

    def __init__(self, seconds):
        self.seconds = int(seconds or 0)
        self.expired = False
        self._previous = None
        self._outer = 0
        self._started = 0.0

    def _expire(self, signum, frame):
        self.expired = True
        raise _StepTimeout()

    def __enter__(self):
        if self.seconds:
            self._started = time.monotonic()
            self._previous = signal.signal(signal.SIGALRM, self._expire)
            self._outer = signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self._previous)
            if self._outer:
                signal.alarm(max(1, int(self._outer - (time.monotonic() - self._started))))
        return False


class _NmChange:
    """What the steps of one NetworkManager change share: the report, its steps and the checkpoint (None without one)."""

    def __init__(self, report, what, host, task_vars):
        self.report = report
        self.what = what
        self.host = host
        self.task_vars = task_vars
        self.steps = {}
        self.checkpoint = None


def _clean(result):
    return {key: value for key, value in (result or {}).items() if key != "invocation"}


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False
    TRANSFERS_FILES = False

    def _module(self, name, args, task_vars, check=None, limit=None):
        """Run a module; ``check`` forces check mode on or off. Connection failures raise _Lost."""
        saved = self._task.check_mode
        if check is not None:
            self._task.check_mode = check
        limiter = _Limit(limit)
        try:
            with limiter:
                result = self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
        except _StepTimeout:
            raise
        except AnsibleConnectionFailure as exc:
            if limiter.expired:
                raise _StepTimeout() from exc
            raise _Lost(str(exc)) from exc
        except Exception as exc:
            if limiter.expired:
                raise _StepTimeout() from exc
            if type(exc).__module__.startswith("mitogen"):
                raise _Lost("%s: %s" % (type(exc).__name__, exc)) from exc  # Mitogen's stream and channel errors
            raise
        finally:
            self._task.check_mode = saved
        if result.get("unreachable"):
            raise _Lost(result.get("msg", "unreachable"))
        return result

    def _reset(self):
        """A fresh connection for the next module, as ansible.builtin.reboot reconnects."""
        reset = getattr(self._connection, "reset", None)
        if reset is not None:
            reset()
        self._connection._shell.tmpdir = None

    def _answers(self, task_vars, within):
        """Whether the host answers a fresh connection within ``within`` seconds."""
        deadline = time.monotonic() + within
        while True:
            self._reset()
            try:
                answer = self._module("ansible.legacy.ping", {}, task_vars, check=False, limit=30).get("ping")
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # Lost, timed out, or a connection torn down in mid-call (Mitogen): try again, as wait_for_connection does.
                display.vvv("host_bridge: the host does not answer yet: %s" % exc)
                answer = None
            if answer == "pong":
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(1)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="host_bridge: %s" % "; ".join(validation.error_messages))
            return result
        args = validation.validated_parameters
        host = task_vars.get("inventory_hostname", "")
        try:
            result.update(self._run(args, task_vars, host))
        except _Lost as exc:
            result.update(failed=True, unreachable=True, msg="host_bridge: %s: %s" % (host, exc))
        return result

    def _run(self, args, task_vars, host):
        facts = task_vars.get("ansible_facts") or {}
        name = args["name"]
        problems = hb.variable_problems(args["bootproto"], args["addresses"], args["gateway"], args["stp"], args["forward_delay"])
        if problems:
            return {"failed": True, "changed": False, "msg": "host_bridge: " + " ".join(problems)}
        nic = hb.resolve_nic(facts, args["nic"], name)
        problems = hb.nic_problems(facts, args["nic"], nic, name)
        if problems:
            return {"failed": True, "changed": False, "msg": "host_bridge: " + problems[0]}

        if args["backend"] == "networkmanager":
            return self._networkmanager(args, nic, task_vars, host)

        read = {}
        if args["persist"]:
            info = self._module(PREFIX + "ifcfg_info", {"devices": [nic, name], "config_dir": args["config_dir"]}, task_vars, check=False)
            if info.get("failed"):
                return {"failed": True, "changed": False, "msg": info.get("msg")}
            read = info.get("ifcfg") or {}
        plan = hb.plan(
            facts,
            read,
            nic,
            name,
            args["bootproto"],
            args["addresses"],
            args["gateway"],
            args["dns"],
            args["stp"],
            args["forward_delay"],
            args["persist"],
            args["config_dir"],
        )
        report = {"backend": "initscripts", "nic": nic, "bridge": name, "ip_batch": plan["ip_batch"]}

        # The plan: every writer in check mode says what it would change.
        probes = []
        for item in plan["ifcfg"]:
            probe = self._module(PREFIX + "ifcfg", item, task_vars, check=True)
            if probe.get("failed"):
                return dict(report, failed=True, changed=False, msg=probe.get("msg"))
            probes.append(probe)
        bridge_probe = self._module(PREFIX + "bridge", plan["bridge"], task_vars, check=True)
        if bridge_probe.get("failed"):
            return dict(report, failed=True, changed=False, msg=bridge_probe.get("msg"))
        planned = hb.needed(probes, bridge_probe, plan["ip_batch"])
        report.update(planned=planned, actions=list(bridge_probe.get("actions") or []))
        diffs = [probe["diff"] for probe in probes if probe.get("diff")]
        if not planned:
            return dict(report, changed=False, msg="host_bridge: %s is bridged into %s as asked." % (nic, name))
        if self._task.check_mode:
            return dict(report, changed=True, diff=diffs, msg="host_bridge: would %s: %s" % (plan["what"], "; ".join(planned)))

        problem = self._pyroute2(args, facts, task_vars, report)
        if problem:
            return problem
        if args["rollback_timeout"] > 0:
            return self._guarded(args, plan, report, task_vars, host)
        return self._unguarded(plan, report, task_vars, host)

    def _pyroute2(self, args, facts, task_vars, report):
        """Install python3-pyroute2 where the host's Python cannot import it; a failed result, or None."""
        python = (facts.get("python") or {}).get("executable") or task_vars.get("ansible_python_interpreter") or "python3"
        probe = self._module("ansible.legacy.command", {"argv": [python, "-c", "import pyroute2"]}, task_vars, check=False)
        report["pyroute2"] = {"present": probe.get("rc") == 0, "installed": False}
        if probe.get("rc") == 0:
            return None
        if not args["install_pyroute2"]:
            return dict(report, failed=True, changed=False, msg=hb.pyroute2_message(python))
        task = self._task.copy()
        task.args = {"name": "python3-pyroute2", "state": "present"}
        action = self._shared_loader_obj.action_loader.get(
            "ansible.legacy.package",
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        installed = action.run(task_vars=task_vars)
        if installed.get("failed"):
            return dict(report, failed=True, changed=False, msg="host_bridge: installing python3-pyroute2 failed: %s" % installed.get("msg", "no message"))
        report["pyroute2"] = {"present": True, "installed": bool(installed.get("changed"))}
        return None

    def _steps(self, plan, task_vars, limit, guard_id=None):
        """Run the change's steps; (failure text or '', results by step, diffs)."""
        results = {}
        diffs = []

        def step(label, module, module_args, lost_label=None):
            try:
                outcome = self._module(module, module_args, task_vars, check=False, limit=limit)
            except _StepTimeout:
                return hb.step_failure(label, timed_out=limit)
            except _Lost:
                return hb.step_failure(lost_label or label, lost=True)
            results.setdefault(label, []).append(_clean(outcome))
            if outcome.get("diff"):
                diffs.append(outcome["diff"])
            if outcome.get("failed"):
                return hb.step_failure(label, outcome)
            return ""

        for item in plan["ifcfg"]:
            failure = step(hb.STEP_FILES, PREFIX + "ifcfg", item)
            if failure:
                return failure, results, diffs
        if guard_id:
            failure = step(hb.STEP_START, PREFIX + "guard", {"action": "start", "id": guard_id, "wait": 30}, "Start the countdown")
            if failure:
                return failure, results, diffs
        failure = step(hb.STEP_BRIDGE, PREFIX + "bridge", plan["bridge"], "Bridge the NIC at runtime")
        if failure:
            return failure, results, diffs
        if plan["ip_batch"]:
            try:
                outcome = self._module(
                    "ansible.legacy.command", {"argv": ["ip", "-batch", "-"], "stdin": "\n".join(plan["ip_batch"])}, task_vars, check=False, limit=limit
                )
            except (_StepTimeout, _Lost):
                # A new address or route cut this connection: the step completed on the host, and the
                # confirmation over a fresh connection (which then cannot come) decides.
                return "", results, diffs
            results[hb.STEP_IP] = [_clean(outcome)]
            if outcome.get("failed") or outcome.get("rc"):
                return hb.step_failure(hb.STEP_IP, outcome), results, diffs
        return "", results, diffs

    def _unguarded(self, plan, report, task_vars, host):
        failure, results, diffs = self._steps(plan, task_vars, None)
        report.update(steps=results, diff=diffs)
        if failure:
            return dict(report, failed=True, changed=True, msg=hb.unguarded_message(host, plan["what"], failure))
        return dict(report, changed=True, msg="host_bridge: %s done without the guard (%s)." % (plan["what"], "; ".join(report["planned"])))

    def _guarded(self, args, plan, report, task_vars, host):
        problem = connection_problem(getattr(self._connection, "transport", None))
        if problem:
            return dict(report, failed=True, changed=False, msg=problem)
        timeout = args["rollback_timeout"]
        guard_id = hb.guard_id(host)
        guard = PREFIX + "guard"
        armed = self._module(
            guard,
            {
                "action": "arm",
                "id": guard_id,
                "timeout": timeout,
                "files": plan["files"],
                "interfaces": [report["nic"], report["bridge"]],
                "description": plan["what"],
                "start_within": max(timeout * 5, 300),
                "wait": 30,
            },
            task_vars,
            check=False,
        )
        report["guard"] = {"arm": _clean(armed)}
        if armed.get("failed"):
            return dict(report, failed=True, changed=False, msg="host_bridge: %s: arming the guard failed: %s" % (host, armed.get("msg")))

        failure, results, diffs = self._steps(plan, task_vars, hb.step_timeout(timeout), guard_id)
        report.update(steps=results, diff=diffs)

        # Confirm over a fresh connection: it goes through the host's new network, which proves it.
        self._reset()
        decision, decision_lost = {}, False
        try:
            decision = self._module(
                guard,
                dict({"action": "rollback" if failure else "confirm", "id": guard_id}, **({"reason": failure} if failure else {})),
                task_vars,
                check=False,
                limit=timeout + 60,
            )
        except (_Lost, _StepTimeout):
            decision_lost = True
        except Exception:  # pylint: disable=broad-exception-caught
            decision_lost = True  # a connection torn down in mid-call (Mitogen) is a lost one too
        report["guard"]["decision"] = _clean(decision)
        if decision_lost and not self._answers(task_vars, timeout + 60):
            return dict(report, failed=True, changed=True, msg=hb.unreachable_message(host, plan["what"], timeout))

        outcome = decision.get("outcome")
        if outcome is None:
            if decision_lost:
                self._reset()
            status = self._module(guard, {"action": "status", "id": guard_id, "wait": timeout + 60}, task_vars, check=False, limit=timeout + 120)
            outcome = status.get("last") or {}
        report["guard"]["outcome"] = outcome
        if hb.rolled_back(outcome):
            cut = hb.cut_off(decision_lost, decision)
            return dict(report, failed=True, changed=True, msg=hb.rollback_message(host, plan["what"], plan["files"], timeout, failure, cut, decision, outcome))
        return dict(report, changed=True, msg="host_bridge: %s, confirmed over a fresh connection (%s)." % (plan["what"], "; ".join(report["planned"])))

    def _networkmanager(self, args, nic, task_vars, host):
        """The bridge's keyfile and the NIC's own profile as its port, activated under a NetworkManager checkpoint."""
        name, timeout = args["name"], args["rollback_timeout"]
        plan = self._nm_plan(args, nic, name, task_vars)
        report = {"backend": "networkmanager", "nic": nic, "bridge": name}
        if plan.get("failed"):
            return dict(report, failed=True, changed=False, msg=plan.get("msg"))
        what = plan["what"]
        keyfiles = [hb.keyfile_args(item, args["nm_config_dir"]) for item in plan["keyfiles"]]
        probes = []
        for item in keyfiles:
            probe = self._module(PREFIX + "nm_keyfile", item, task_vars, check=True)
            if probe.get("failed"):
                return dict(report, failed=True, changed=False, msg=probe.get("msg"))
            probes.append(probe)
        diffs = [probe["diff"] for probe in probes if probe.get("diff")]
        report["planned"] = [probe.get("path") or item["name"] for probe, item in zip(probes, keyfiles) if probe.get("changed_keys")]
        if self._task.check_mode:
            # The keyfile diff is the whole run: nothing is written.
            return dict(report, changed=any(probe.get("changed") for probe in probes), diff=diffs, msg="host_bridge: would %s through NetworkManager." % what)
        if not hb.nm_needed(plan, probes):
            return dict(report, changed=False, msg="host_bridge: %s is bridged into %s as asked." % (nic, name))

        change = _NmChange(report, what, host, task_vars)
        failure = self._nm_create_checkpoint(change, timeout)
        if failure is not None:
            return failure
        failure = self._nm_write(change, keyfiles, diffs, timeout)
        if failure is not None:
            return failure
        failure, cut = self._nm_activate(change, plan, timeout)
        if failure is not None:
            return failure
        if change.checkpoint is None:
            return dict(report, steps=change.steps, changed=True, msg="host_bridge: %s done without a checkpoint." % what)
        return self._nm_confirm(change, cut, timeout)

    def _nm_plan(self, args, nic, name, task_vars):
        """nm_bridge_plan's result for the task's arguments."""
        return self._module(
            PREFIX + "nm_bridge_plan",
            {
                "nic": nic,
                "bridge": name,
                "bootproto": args["bootproto"],
                "addresses": args["addresses"],
                "gateway": args["gateway"],
                "dns": args["dns"],
                "stp": args["stp"],
                "forward_delay": args["forward_delay"],
            },
            task_vars,
        )

    def _nm_create_checkpoint(self, change, timeout):
        """Take the checkpoint when there is a rollback timeout; a failed result, or None."""
        if timeout > 0:
            # The countdown is long until the profiles are written, and the rollback timeout from the activation on.
            taken = self._module(PREFIX + "nm_checkpoint", {"action": "create", "timeout": max(timeout * 5, 300)}, change.task_vars, check=False)
            change.report["checkpoint"] = {"create": _clean(taken)}
            if taken.get("failed"):
                return dict(change.report, failed=True, changed=False, msg=taken.get("msg"))
            change.checkpoint = taken["checkpoint"]
        return None

    def _nm_failed(self, change, step, result, failure=None):
        """Roll back at once after a failed step (or fail without a checkpoint)."""
        report, steps, what = change.report, change.steps, change.what
        if change.checkpoint is None:
            return dict(report, steps=steps, failed=True, changed=True, msg=hb.nm_unguarded_message(change.host, what, step, result))
        rolled = self._module(
            PREFIX + "nm_checkpoint",
            {
                "action": "rollback",
                "checkpoint": change.checkpoint,
                "what": what,
                "label": "host_bridge: %s" % change.host,
                "failure": failure or hb.step_failure(step, result),
            },
            change.task_vars,
            check=False,
        )
        report["checkpoint"]["rollback"] = _clean(rolled)
        return dict(report, steps=steps, failed=True, changed=True, msg=rolled.get("msg"))

    def _nm_write(self, change, keyfiles, diffs, timeout):
        """Write the keyfiles, then give the checkpoint the rollback timeout; a failed result, or None."""
        for item in keyfiles:
            written = self._module(PREFIX + "nm_keyfile", dict(item, reload=True), change.task_vars, check=False)
            change.steps.setdefault(hb.NM_STEP_WRITE, []).append(_clean(written))
            if written.get("diff"):
                diffs.append(written["diff"])
            if written.get("failed"):
                return self._nm_failed(change, hb.NM_STEP_WRITE, written)
        change.report["diff"] = diffs
        if change.checkpoint is not None:
            adjusted = self._module(
                PREFIX + "nm_checkpoint", {"action": "adjust", "checkpoint": change.checkpoint, "timeout": timeout}, change.task_vars, check=False
            )
            change.steps[hb.NM_STEP_ADJUST] = _clean(adjusted)
            if adjusted.get("failed"):
                return self._nm_failed(change, hb.NM_STEP_ADJUST, adjusted)
        return None

    def _nm_activate(self, change, plan, timeout):
        """Activate the port's profile; (a failed result or None, whether the connection was cut)."""
        checkpoint = change.checkpoint
        # Under the checkpoint the activation has a time limit: when the new profiles cut the connection, the
        # activation still completes on the host and the confirmation over a fresh connection decides.
        limit = hb.step_timeout(timeout) if checkpoint is not None else None
        activation, cut = None, False
        try:
            activation = self._module(
                "ansible.legacy.command", {"argv": hb.activation_argv(plan["port_uuid"], timeout)}, change.task_vars, check=False, limit=limit
            )
        except (_StepTimeout, _Lost):
            if checkpoint is None:
                raise
            cut = True
        change.steps[hb.NM_STEP_ACTIVATE] = _clean(activation)
        if activation is not None and (activation.get("failed") or activation.get("rc")):
            if checkpoint is None:
                return self._nm_failed(change, hb.NM_STEP_ACTIVATE, activation), cut
            return self._nm_failed(change, hb.NM_STEP_ACTIVATE, activation, hb.activation_failure(plan["port_profile"], activation)), cut
        return None, cut

    def _nm_destroy(self, change, timeout):
        """Destroy the checkpoint (which confirms the change); the module's result."""
        return self._module(
            PREFIX + "nm_checkpoint",
            {"action": "destroy", "checkpoint": change.checkpoint, "timeout": timeout, "what": change.what, "label": "host_bridge: %s" % change.host},
            change.task_vars,
            check=False,
            limit=timeout + 60,
        )

    def _nm_confirm(self, change, cut, timeout):
        """Confirm the activated change over a fresh connection by destroying the checkpoint; the task's result."""
        report, steps, what, host, task_vars = change.report, change.steps, change.what, change.host, change.task_vars
        # Confirm over a fresh connection: it goes through the host's new network, which proves it.
        if cut and not self._answers(task_vars, hb.step_timeout(timeout)):
            if not self._answers(task_vars, timeout + 60):
                return dict(report, steps=steps, failed=True, changed=True, msg=hb.unreachable_message(host, what, timeout, backend="networkmanager"))
        else:
            self._reset()
        # Destroying the checkpoint confirms the change; when NetworkManager already rolled back (the host came
        # back only after the timeout), this fails with what was restored.
        try:
            destroyed = self._nm_destroy(change, timeout)
        except (_StepTimeout, _Lost):
            if not self._answers(task_vars, timeout + 60):
                return dict(report, steps=steps, failed=True, changed=True, msg=hb.unreachable_message(host, what, timeout, backend="networkmanager"))
            destroyed = self._nm_destroy(change, timeout)
        report["checkpoint"]["destroy"] = _clean(destroyed)
        if destroyed.get("failed"):
            return dict(report, steps=steps, failed=True, changed=True, msg=destroyed.get("msg"))
        return dict(report, steps=steps, changed=True, msg="host_bridge: %s through NetworkManager, confirmed over a fresh connection." % what)
