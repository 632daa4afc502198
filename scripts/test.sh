#!/usr/bin/env bash
# Every test of kvmhost.bridging, from a fresh Debian 12 machine:
#   ruff (lint and format), ansible-lint (production profile), mypy, ansible-test sanity, unit tests,
#   collection build and ansible-doc of every module, integration tests on the
#   namespace lab, Molecule scenarios; where a Python >= 3.12 exists, sanity and
#   unit tests again with the newest ansible-core.
# Every stage runs and prints passed, failed and skipped; the script fails if any
# stage failed. A stage fails when it skips anything tests/skips.txt does not list
# with its reason, or runs no test (no root, no conformance data: it says why).
# Environment: KVMB_LAB_ID (default 0) picks the lab; the integration stage runs
# KVMB_INTEGRATION_WORKERS (default 2) pytest-xdist workers, each on its own lab:
# KVMB_LAB_ID, KVMB_LAB_ID+1, ... KVMB_STAGES limits the stages (e.g.
# KVMB_STAGES="ruff unit").
# The other stages (lint, sanity, unit, build, latest, then Molecule on its lab
# 20) run one after the other in the background while the integration stage
# runs; their output is printed, in order, after it.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
. scripts/setup.sh || { echo "setup failed"; exit 1; }
export KVMB_LAB_ID="${KVMB_LAB_ID:-0}"
INTEGRATION_WORKERS="${KVMB_INTEGRATION_WORKERS:-2}"
MOLECULE_LAB=20 MOLECULE_LOCK=/tmp/kvmb-molecule.lock  # extensions/molecule/config.yml's lab
if [ "$KVMB_LAB_ID" -le "$MOLECULE_LAB" ] && [ $((KVMB_LAB_ID + INTEGRATION_WORKERS)) -gt "$MOLECULE_LAB" ]; then
    echo "the integration labs $KVMB_LAB_ID-$((KVMB_LAB_ID + INTEGRATION_WORKERS - 1)) would include Molecule's lab $MOLECULE_LAB: pick another KVMB_LAB_ID"
    exit 1
fi
STAGES="${KVMB_STAGES:-ruff lint mypy sanity unit build integration molecule latest}"

# Whatever happens, the labs of this run are torn down (one per integration
# worker), and the background stages are stopped (their process group).
background_pid=""
teardown() {
    if [ -n "$background_pid" ] && kill -0 "$background_pid" 2>/dev/null; then
        kill -TERM -- -"$background_pid" 2>/dev/null || true
        echo "stopped the background stages; their output so far:"
        cat "$COUNTS_DIR/background.log" 2>/dev/null
    fi
    # Only a run whose integration stage started touches the integration labs
    # (KVMB_STAGES="ruff" must not remove a lab another run of this id uses).
    local n
    if [ -e "${COUNTS_DIR:-/nonexistent}/integration.started" ]; then
        for ((n = 0; n < INTEGRATION_WORKERS; n++)); do
            python "$ROOT/tests/lab" down --id $((KVMB_LAB_ID + n)) >/dev/null 2>&1 || true
        done
    fi
    # Molecule's lab, if this run's Molecule had started (and nobody else holds it now).
    if [ -e "${COUNTS_DIR:-/nonexistent}/molecule.started" ]; then
        flock -w 10 "$MOLECULE_LOCK" python "$ROOT/tests/lab" down --id "$MOLECULE_LAB" >/dev/null 2>&1 || true
    fi
    rm -rf "${COUNTS_DIR:-}"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Each stage prints its counts: a pytest stage its tests (through tests/kvmb_skips.py,
# which also fails a stage that skips a test not listed in tests/skips.txt or runs
# no test at all); any other stage counts as one check. A stage that skips itself
# returns 77 and fails unless tests/skips.txt lists it as stage:NAME with a reason.
SKIPPED_RC=77
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
            echo "$name ($reason)" > "$COUNTS_DIR/$name.skipped"
            printf -- '----- %s: SKIPPED, allowed by tests/skips.txt (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
            return 0
        fi
        echo "stage $name skipped itself, and tests/skips.txt does not list stage:$name with a reason"
        rc=1
    elif [ "$rc" -eq 0 ] && [ -s "$counts" ] && [ $((p + f)) -eq 0 ]; then
        echo "stage $name ran no test"; rc=1
    fi
    if [ "$rc" -eq 0 ]; then
        touch "$COUNTS_DIR/$name.ok"; printf -- '----- %s: ok (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
    else
        touch "$COUNTS_DIR/$name.failed"; printf -- '----- %s: FAILED (%ss): %s passed, %s failed, %s skipped\n' "$name" $((SECONDS - start)) "$p" "$f" "$s"
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

# pytest-xdist: each worker brings up and tears down its own lab (lab id =
# KVMB_LAB_ID + worker number, tests/integration/conftest.py). Whole files go to
# a worker (module fixtures stay shared), lease-bound files first; a crashed
# worker is not replaced, so no lab id beyond the last worker's is used.
run_integration() {
    need_root integration || return 1
    touch "$COUNTS_DIR/integration.started"
    python -m pytest -q -p no:cacheprovider -p kvmb_skips -rs -o testpaths=tests/integration \
        -n "$INTEGRATION_WORKERS" --dist loadfile --no-loadscope-reorder --max-worker-restart 0 --durations 15 \
        tests/integration
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
    # Lab 20 is Molecule's on this machine, for every clone: its lock keeps two
    # runs apart, and is held until the check below has run. When this script is
    # interrupted, teardown stops Molecule and removes lab 20 under the same lock.
    touch "$COUNTS_DIR/molecule.started"
    (
        flock 9
        MOLECULE_EPHEMERAL_DIRECTORY="$eph" molecule test --all || rc=$?
        # The default scenario's destroy has run, also after a failed scenario; this
        # covers a Molecule that crashed or was killed, and fails on any leftover.
        python "$ROOT/tests/lab" down --id "$MOLECULE_LAB" || rc=1
        exit $rc
    ) 9> "$MOLECULE_LOCK" || rc=$?
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
    local dest; dest="$(kvmb_sanity_dir)" || return 1
    ( cd "$dest" &&
      PATH="$venv/bin:$PATH" ansible-test sanity --local --python "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements --color no ) || return 1
    need_conformance || return 1
    "$venv/bin/python" -m pytest -q -n 2 -p no:cacheprovider -p kvmb_skips tests/unit
}

# The changelog's fragments and version_added (antsibull-changelog, pinned in requirements-dev.txt) with the lint.
run_lint() { ansible-lint --profile production && antsibull-changelog lint; }

# ruff's lint rules and its formatter (the tree is kept as `ruff format` writes it).
run_ruff() { ruff check . && ruff format --check .; }

# mypy over plugins/, from the installed copy where ansible_collections.* resolves (pyproject.toml: [tool.mypy]).
run_mypy() {
    ( cd "$KVMB_COLLECTIONS" && mypy --config-file ansible_collections/kvmhost/bridging/pyproject.toml ansible_collections/kvmhost/bridging/plugins )
}

run_start=$SECONDS
stage ruff run_ruff
# The other stages, in the background (own process group, so that teardown can
# stop all of it); output kept and printed after the integration stage.
background_stages() {
    stage lint run_lint
    stage mypy run_mypy
    stage sanity run_sanity
    stage unit run_unit
    stage build run_build
    stage latest run_latest
    stage molecule run_molecule
}
set -m
background_stages > "$COUNTS_DIR/background.log" 2>&1 < /dev/null &
background_pid=$!
set +m
stage integration run_integration
wait "$background_pid"
background_pid=""
rm -f "$COUNTS_DIR/molecule.started"  # its own check removed lab 20 under the lock
cat "$COUNTS_DIR/background.log"

passed=0 failed=0 failures=() skipped_stages=()
for name in ruff lint mypy sanity unit build integration molecule latest; do
    if [ -e "$COUNTS_DIR/$name.ok" ]; then passed=$((passed + 1))
    elif [ -e "$COUNTS_DIR/$name.failed" ]; then failed=$((failed + 1)); failures+=("$name")
    elif [ -e "$COUNTS_DIR/$name.skipped" ]; then skipped_stages+=("$(cat "$COUNTS_DIR/$name.skipped")")
    fi
done
echo
[ "${#skipped_stages[@]}" -gt 0 ] && printf 'skipped stage: %s\n' "${skipped_stages[@]}"
[ "$failed" -gt 0 ] && echo "failed stages: ${failures[*]}"
echo "all stages: $((SECONDS - run_start))s"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]  # teardown (EXIT) removes the labs of a started integration stage, and COUNTS_DIR
