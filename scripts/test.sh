#!/usr/bin/env bash
# Every test of kvmhost.bridging, from a fresh Debian 12 machine:
#   ruff, ansible-lint (production profile), ansible-test sanity, unit tests,
#   collection build and ansible-doc of every module, integration tests on the
#   namespace lab, Molecule scenarios; where a Python >= 3.12 exists, sanity and
#   unit tests again with the newest ansible-core.
# Every stage runs and prints passed, failed and skipped; the script fails if any
# stage failed. A stage fails when it skips anything tests/skips.txt does not list
# with its reason, or runs no test (no root, no conformance data: it says why).
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

# Each stage prints its counts: a pytest stage its tests (through tests/kvmb_skips.py,
# which also fails a stage that skips a test not listed in tests/skips.txt or runs
# no test at all); any other stage counts as one check. A stage that skips itself
# returns 77 and fails unless tests/skips.txt lists it as stage:NAME with a reason.
SKIPPED_RC=77
skipped_stages=()
COUNTS_DIR="$(mktemp -d)"
export PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"

allowed_stage_skip() {  # the reason tests/skips.txt gives for skipping stage $1, or nothing
    sed -n "s/^stage:$1 | //p" "$ROOT/tests/skips.txt" | head -1
}

stage() {
    local name="$1"; shift
    case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
    printf '\n===== %s =====\n' "$name"
    local start=$SECONDS rc=0 counts="$COUNTS_DIR/$name" reason
    rm -f "$counts"
    KVMB_STAGE_COUNTS="$counts" "$@" || rc=$?
    local p=1 f=0 s=0
    [ "$rc" -ne 0 ] && { p=0; f=1; }
    [ -s "$counts" ] && read -r p f s < "$counts"
    if [ "$rc" -eq "$SKIPPED_RC" ]; then
        p=0 f=0 s=1
        reason="$(allowed_stage_skip "$name")"
        if [ -n "$reason" ]; then
            skipped_stages+=("$name ($reason)")
            printf -- '----- %s: SKIPPED, allowed by tests/skips.txt (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
            return 0
        fi
        echo "stage $name skipped itself, and tests/skips.txt does not list stage:$name with a reason"
        rc=1
    elif [ "$rc" -eq 0 ] && [ -s "$counts" ] && [ $((p + f)) -eq 0 ]; then
        echo "stage $name ran no test"; rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1)); printf -- '----- %s: ok (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
    else
        failed=$((failed + 1)); failures+=("$name"); printf -- '----- %s: FAILED (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
    fi
}

# What the unit and integration tests need of this machine; each says what is missing and where.
CONFORMANCE="${KVMB_IFCFG_CONFORMANCE:-$(dirname "$ROOT")/shared/conformance/ifcfg}"
need_conformance() {
    [ -d "$CONFORMANCE" ] && return 0
    echo "the ifcfg conformance data is missing: expected at $CONFORMANCE (../shared/conformance/ifcfg beside the repository, or KVMB_IFCFG_CONFORMANCE)"
    return 1
}
need_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    echo "the namespace lab needs root: run scripts/test.sh as root (stage $1 runs nothing without it)"
    return 1
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
    need_conformance || return 1
    python -m pytest -q -n 2 -p no:cacheprovider -p kvmb_skips tests/unit
    local rc=$?
    [ $rc -eq 5 ] && { echo "no unit tests collected"; return 1; }
    return $rc
}

run_integration() {
    need_root integration || return 1
    python -m pytest -q -p no:cacheprovider -p kvmb_skips -rs -o testpaths=tests/integration tests/integration
}

# Molecule runs from the collection root: only there does it take the scenarios
# from extensions/molecule and the shared extensions/molecule/config.yml. The
# scenarios run on lab 20 (made and removed by the default scenario); a fresh
# ephemeral directory per run keeps a stale "created" state from skipping create.
run_molecule() {
    need_root molecule || return 1
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
    if [ -z "$py" ]; then echo "no Python >= 3.12 here: the stage skips itself"; return $SKIPPED_RC; fi
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
    need_conformance || return 1
    "$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider -p kvmb_skips tests/unit
}

# The changelog's fragments and version_added (antsibull-changelog, pinned in requirements-dev.txt) with the lint.
run_lint() { ansible-lint --profile production && antsibull-changelog lint; }

stage ruff ruff check .
stage lint run_lint
stage sanity run_sanity
stage unit run_unit
stage build run_build
stage integration run_integration
stage molecule run_molecule
stage latest run_latest

rm -rf "$COUNTS_DIR"
echo
[ "${#skipped_stages[@]}" -gt 0 ] && printf 'skipped stage: %s\n' "${skipped_stages[@]}"
[ "$failed" -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
