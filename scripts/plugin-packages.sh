#!/usr/bin/env bash
# Prints the cargo arguments that leave the host out of a workspace build, so that
# `cargo build --workspace $(this)` builds exactly the plugins (and their SDK): an
# `--exclude NAME` pair for every workspace package whose manifest is under host/ (the
# host crates, whatever they are called and however many there are). One argument per
# line, for `mapfile -t`. Fails when cargo metadata fails or finds no package under host/.
#
#   scripts/plugin-packages.sh
#
# Environment: none of its own (cargo's, e.g. CARGO_HOME, are respected).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
metadata=$(cd "$root" && cargo metadata --no-deps --format-version 1)
# Compared against the workspace root cargo reports, so a symlinked checkout still matches.
python3 -c '
import json, os, sys
m = json.load(sys.stdin)
host = os.path.join(m["workspace_root"], "host") + os.sep
names = sorted(p["name"] for p in m["packages"] if p["manifest_path"].startswith(host))
if not names:
    sys.exit("plugin-packages.sh: no workspace package under " + host)
for name in names:
    print("--exclude")
    print(name)
' <<<"$metadata"
