#!/usr/bin/env bash
# ansible-test sanity on the installed copy of the collection (no Docker, no
# ignore files). Usage: scripts/sanity.sh [ansible-test sanity options/targets]
set -euo pipefail
. "$(dirname "$0")/setup.sh"
python="$("$KVMB_VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
dest="$(kvmb_sanity_dir)" || exit 1
cd "$dest"
exec ansible-test sanity --local --python "$python" --requirements --color no "$@"
