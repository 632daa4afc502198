#!/usr/bin/env bash
# Prepare this machine for the demo and the tests, from nothing:
#   - Debian packages the lab and the modules need (only those missing);
#   - .venv with the pinned development dependencies (Debian 12's python3);
#   - the collection installed where Ansible finds it (~/.ansible/collections).
# Safe to run again: each step is skipped when already done.
# Source it (". scripts/setup.sh") to get .venv/bin on PATH.
_kvmb_saved_opts="$(set +o)"
set -euo pipefail

KVMB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export KVMB_ROOT
KVMB_VENV="${KVMB_VENV:-$KVMB_ROOT/.venv}"
KVMB_PYTHON="${KVMB_PYTHON:-/usr/bin/python3}"
KVMB_COLLECTIONS="${KVMB_COLLECTIONS:-$HOME/.ansible/collections}"

_say() { printf '== %s\n' "$*" >&2; }

kvmb_apt() {
    local need=() pkg
    local wanted=(iproute2 iptables openssh-server openssh-client dnsmasq-base udhcpc
                  python3 python3-venv python3-dev gcc git rsync kmod procps shellcheck iputils-ping)
    wanted+=(libvirt0 libvirt-dev pkg-config libvirt-clients libxml2-utils)  # vm_interface: libvirt-python builds against libvirt-dev; virt-xml-validate
    wanted+=(firewalld dbus-daemon)  # firewalld lab hosts: firewalld on a private system bus in the host's namespaces
    wanted+=(network-manager dbus)  # NetworkManager lab hosts (issue 11); policy-rc.d keeps it from starting here
    wanted+=(gir1.2-nm-1.0)  # keyfile tests: libnm 1.42's own keyfile reader (NM.keyfile_read) as the oracle
    wanted+=(isc-dhcp-client)  # bridge: a DHCP client moves from the NIC to the bridge (dhclient runs only inside lab hosts)
    # Real VMs in lab hosts: libvirtd + virtlogd (never started here: policy-rc.d) and QEMU (TCG).
    wanted+=(libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86)
    wanted+=(nftables)  # libvirt_routing: its nftables rules loaded with nft -f into a lab host (never this machine's)
    for pkg in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
    done
    if [ "${#need[@]}" -gt 0 ]; then
        _say "installing Debian packages: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # policy-rc.d stops Debian's maintainer scripts from starting the
        # machine's own sshd: the lab starts its own, one per namespace host.
        local prc=/usr/sbin/policy-rc.d created=0
        if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod 755 "$prc"; created=1; fi
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
        if [ "$created" = 1 ]; then rm -f "$prc"; fi
    fi
}

kvmb_venv() {
    local stamp="$KVMB_VENV/.requirements.sha256" want
    want="$(sha256sum < "$KVMB_ROOT/requirements-dev.txt" | cut -d' ' -f1)"
    if [ -x "$KVMB_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$KVMB_VENV/bin/python" ]; then
        _say "creating $KVMB_VENV with $KVMB_PYTHON"
        "$KVMB_PYTHON" -m venv "$KVMB_VENV"
    fi
    _say "installing requirements-dev.txt into $KVMB_VENV"
    "$KVMB_VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$KVMB_VENV/bin/pip" install -q -r "$KVMB_ROOT/requirements-dev.txt"
    echo "$want" > "$stamp"
}

# Install the working tree as the collection: a copy of everything git does not
# ignore (tracked files and new ones), so Ansible, ansible-test and Molecule all
# see exactly what is in the tree. rsync reads the .gitignore files itself.
kvmb_install_collection() {
    local dest="$KVMB_COLLECTIONS/ansible_collections/kvmhost/bridging"
    mkdir -p "$dest"
    rsync -a --delete --exclude=/.git --filter=':- .gitignore' "$KVMB_ROOT/" "$dest/"
}

# The installed copy, for ansible-test: it lists a collection's files with git
# when the copy sits inside a git work tree, and a copy in a git-ignored folder
# (a worktree's .collections/) then has no files at all: every sanity test
# "passes" with all targets skipped. Refuse that instead of passing.
kvmb_sanity_dir() {
    local dest="$KVMB_COLLECTIONS/ansible_collections/kvmhost/bridging" top
    if top="$(git -C "$dest" rev-parse --show-toplevel 2>/dev/null)" && [ "$top" != "$dest" ]; then
        echo "KVMB_COLLECTIONS ($KVMB_COLLECTIONS) is inside the git work tree $top: ansible-test would find no files there. Use a path outside it." >&2
        return 1
    fi
    echo "$dest"
}

# ansible-test's sanity venvs bootstrap pip from a script on a host this
# network cannot reach: provide that script, and the pip wheel it installs.
kvmb_ansible_test_bootstrap() {
    local venv="${1:-$KVMB_VENV}" version cache="$HOME/.ansible/test/cache"
    version="$("$venv/bin/python" - <<'PY'
import re, ansible_test, os
src = open(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")).read()
print(re.search(r"default_packages = dict\(\s*pip='([0-9.]+)'", src).group(1))
PY
)"
    mkdir -p "$cache/kvmb-wheels"
    if ! ls "$cache/kvmb-wheels/pip-$version-"*.whl >/dev/null 2>&1; then
        "$venv/bin/pip" download -q --no-deps -d "$cache/kvmb-wheels" "pip==$version"
    fi
    cp "$KVMB_ROOT/scripts/get_pip_offline.py" "$cache/get_pip_${version//./_}.py"
}

# Mitogen for Ansible, at the version of requirements-mitogen.txt, into the bench's cache
# (pip --target, not into the venv): the integration tests and bench/ take it from there.
kvmb_mitogen() {
    local version target
    version="$(sed -n 's/^mitogen==\([0-9.]*\).*/\1/p' "$KVMB_ROOT/requirements-mitogen.txt")"
    target="$HOME/.cache/kvmhost-bench/mitogen-$version"
    if [ ! -d "$target/ansible_mitogen" ]; then
        _say "installing mitogen==$version into $target"
        mkdir -p "$HOME/.cache/kvmhost-bench"
        "$KVMB_VENV/bin/pip" install -q --no-deps --target "$target" "mitogen==$version" || { rm -rf "$target"; return 1; }
    fi
}

# The VM guests' kernel and busybox initramfs, from Debian packages (apt-get
# download, cached in /var/cache/kvmb-guest; nothing is installed).
kvmb_guest_image() {
    "$KVMB_PYTHON" "$KVMB_ROOT/tests/lab/guest/build.py" >/dev/null
}

kvmb_setup() {
    kvmb_apt
    kvmb_guest_image
    kvmb_venv
    kvmb_mitogen
    kvmb_ansible_test_bootstrap "$KVMB_VENV"
    export PATH="$KVMB_VENV/bin:$PATH"
    export ANSIBLE_COLLECTIONS_PATH="$KVMB_COLLECTIONS"
    kvmb_install_collection
}

kvmb_setup
# When sourced, give the caller its shell options back.
eval "$_kvmb_saved_opts"
unset _kvmb_saved_opts
