#!/usr/bin/env bash
# Every test of kvmhost.bridging, from a fresh Debian 12 machine:
#   ruff, ansible-lint (production profile), ansible-test sanity, unit tests,
#   collection build and ansible-doc of every module, integration tests on the
#   namespace lab, Molecule scenarios; where a Python >= 3.12 exists, sanity and
#   unit tests again with the newest ansible-core.
# Every stage runs; the script fails if any stage failed.
# Environment: KVMB_LAB_ID (default 0) picks the lab; KVMB_STAGES limits the
# stages (e.g. KVMB_STAGES="ruff unit").
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
. scripts/setup.sh || { echo "setup failed"; exit 1; }
export KVMB_LAB_ID="${KVMB_LAB_ID:-0}"
STAGES="${KVMB_STAGES:-ruff lint sanity unit build integration molecule latest}"
passed=0 failed=0 failures=()

# Whatever happens, the lab of this run is torn down.
teardown() { python "$ROOT/tests/lab" down --id "$KVMB_LAB_ID" >/dev/null 2>&1 || true; }
trap teardown EXIT

stage() {
    local name="$1"; shift
    case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
    printf '\n===== %s =====\n' "$name"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1)); printf -- '----- %s: ok (%ss)\n' "$name" $((SECONDS - start))
    else
        failed=$((failed + 1)); failures+=("$name"); printf -- '----- %s: FAILED (%ss)\n' "$name" $((SECONDS - start))
    fi
}

run_sanity() { bash scripts/sanity.sh; }

run_build() {
    local out; out="$(mktemp -d)"
    ansible-galaxy collection build --force --output-path "$out" "$KVMB_COLLECTIONS/ansible_collections/kvmhost/bridging" || return 1
    local mod ok=0
    for mod in plugins/modules/*.py; do
        mod="$(basename "$mod" .py)"
        if ! ansible-doc "kvmhost.bridging.$mod" >/dev/null; then echo "ansible-doc failed for $mod"; ok=1; fi
    done
    rm -rf "$out"
    return $ok
}

run_unit() {
    python -m pytest -q -n 2 -p no:cacheprovider tests/unit
    local rc=$?
    [ $rc -eq 5 ] && { echo "no unit tests collected"; return 1; }
    return $rc
}

run_integration() {
    python -m pytest -q -p no:cacheprovider -o testpaths=tests/integration tests/integration
}

# Molecule runs from the collection root: only there does it take the scenarios
# from extensions/molecule and the shared extensions/molecule/config.yml. The
# scenarios run on lab 20 (made and removed by the default scenario); a fresh
# ephemeral directory per run keeps a stale "created" state from skipping create.
run_molecule() {
    if ! ls extensions/molecule/*/molecule.yml >/dev/null 2>&1; then
        echo "no Molecule scenarios yet"; return 0
    fi
    local eph rc=0
    eph="$(mktemp -d)"
    # Also when this script is interrupted mid-run, lab 20 goes down.
    trap 'python "$ROOT/tests/lab" down --id 20 >/dev/null 2>&1 || true; teardown' EXIT
    MOLECULE_EPHEMERAL_DIRECTORY="$eph" molecule test --all || rc=$?
    # The default scenario's destroy has run, also after a failed scenario; this
    # covers a Molecule that crashed or was killed, and fails on any leftover.
    python "$ROOT/tests/lab" down --id 20 || rc=1
    trap teardown EXIT
    rm -rf "$eph"
    return $rc
}

# The newest ansible-core needs Python >= 3.12 on the controller.
run_latest() {
    local py="" candidate
    # A name on PATH may be a pyenv shim for a version that is not active:
    # take the first one that really runs.
    for candidate in python3.12 python3.13 python3.14 /usr/local/bin/python3.1[2-9] \
                     "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            py="$(command -v "$candidate")"; break
        fi
    done
    if [ -z "$py" ]; then echo "no Python >= 3.12 here: skipped"; return 0; fi
    local venv="$ROOT/.venv-latest"
    local want; want="$(sha256sum < requirements-dev.txt | cut -d' ' -f1)"
    if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
        rm -rf "$venv"
        "$py" -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip &&
        "$venv/bin/pip" install -q -r requirements-dev.txt || return 1
        echo "$want" > "$venv/.requirements.sha256"
    fi
    kvmb_ansible_test_bootstrap "$venv" || return 1
    "$venv/bin/ansible" --version | head -1
    ( cd "$KVMB_COLLECTIONS/ansible_collections/kvmhost/bridging" &&
      PATH="$venv/bin:$PATH" ansible-test sanity --local --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements --color no ) || return 1
    "$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider tests/unit
}

stage ruff ruff check .
stage lint ansible-lint --profile production
stage sanity run_sanity
stage unit run_unit
stage build run_build
stage integration run_integration
stage molecule run_molecule
stage latest run_latest

echo
[ "$failed" -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
