#!/usr/bin/env bash
# The demo: bridged networking for KVM hosts, end to end, on the namespace lab.
#   1. bring up a lab of two RHEL-like hosts (stock firewall with the FORWARD
#      REJECT rule, SSH) and a LAN with a DHCP server: the first ones run as
#      network-scripts hosts (ifcfg files), the last one runs real NetworkManager
#      on keyfiles, as EL9/EL10 do;
#   2. run playbooks/site.yml against them: eth1 becomes a port of breth0
#      (ifcfg files and netlink under the rollback guard on the network-scripts
#      hosts; keyfiles activated under a NetworkManager checkpoint on the other),
#      forwarding on, REJECT rule gone (runtime and saved rules);
#   3. plug a guest into each bridge: it gets a DHCP lease from upstream;
#      and a real VM: libvirtd in h1 boots a QEMU guest (domain demo01) on
#      breth0, which reports its lease on its serial console;
#   4. print the bridge report (kvmhost.bridging.bridge_info), which names the
#      libvirt domain behind the VM's vnetN;
#   5. tear the lab down.
# Environment: KVMB_DEMO_LAB_ID (default 90), KVMB_DEMO_HOSTS (default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
LAB_ID="${KVMB_DEMO_LAB_ID:-90}"
HOSTS="${KVMB_DEMO_HOSTS:-2}"
INVENTORY="/tmp/kvmb-lab/$LAB_ID/inventory.yml"
export ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_PIPELINING=True ANSIBLE_DEPRECATION_WARNINGS=False

teardown() { python tests/lab down --id "$LAB_ID" || true; }
trap teardown EXIT

echo "== 1. lab: $HOSTS RHEL-like hosts (the last one with NetworkManager) and a LAN with DHCP"
python tests/lab down --id "$LAB_ID" >/dev/null 2>&1 || true
python tests/lab up --id "$LAB_ID" --hosts "$((HOSTS - 1))" --stock-firewall
python tests/lab up --id "$LAB_ID" --hosts "$HOSTS" --stock-firewall --networkmanager

echo "== 2. ansible-playbook playbooks/site.yml (bridge eth1 into breth0, forwarding, REJECT rule)"
ansible-playbook -i "$INVENTORY" playbooks/site.yml -e host_bridge_nic=eth1 -e host_bridge_name=breth0

echo "== 3. a guest on each bridge asks the LAN's DHCP server for a lease"
for n in $(seq 1 "$HOSTS"); do
    python tests/lab guest "h$n" --id "$LAB_ID" --port vnet0 --bridge breth0 --dhcp
done

echo "== 3b. a real VM: libvirtd in h1 boots domain demo01 on breth0 (QEMU, TCG); its lease, from its serial console"
python tests/lab vm h1 demo01 --id "$LAB_ID" --nic breth0=52:54:00:de:00:01 --lease 52:54:00:de:00:01
grep -a '^KVMB' "/tmp/kvmb-lab/$LAB_ID/hosts/h1/libvirt/consoles/demo01.log" | tr -d '\r'

echo "== 4. bridge report"
ansible-playbook -i "$INVENTORY" scripts/demo/report.yml

echo "== 5. teardown"
