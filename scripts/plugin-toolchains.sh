#!/usr/bin/env bash
# Installs the pinned toolchains that build Python and JavaScript plugins, under
# target/langs/ of the repository (nothing system-wide): componentize-py in a venv
# (target/langs/py), componentize-js in node_modules (target/langs/js). `just
# plugin-toolchains` runs it; `just plugins` then builds examples/plugins/hello-py and
# hello-js too. Needs python3 (with venv) and npm; installs Debian's when missing.
#
#   scripts/plugin-toolchains.sh            (no arguments; does nothing when installed)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
langs="$root/target/langs"
COMPONENTIZE_PY=0.25.1
COMPONENTIZE_JS=0.22.0
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
apt_install() {
    echo "installing $* (Debian)" >&2
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
mkdir -p "$langs"
if ! "$langs/py/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY"; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    echo "installing componentize-py $COMPONENTIZE_PY into $langs/py" >&2
    rm -rf "$langs/py"
    python3 -m venv "$langs/py"
    "$langs/py/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi
installed_js() {
    node -e "process.stdout.write(require('$langs/js/node_modules/@bytecodealliance/componentize-js/package.json').version)" 2>/dev/null
}
if [ "$(installed_js)" != "$COMPONENTIZE_JS" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    echo "installing @bytecodealliance/componentize-js $COMPONENTIZE_JS into $langs/js" >&2
    mkdir -p "$langs/js"
    [ -f "$langs/js/package.json" ] || echo '{"private": true}' >"$langs/js/package.json"
    (cd "$langs/js" && npm install --silent --no-audit --no-fund --save-exact \
        "@bytecodealliance/componentize-js@$COMPONENTIZE_JS")
fi
echo "plugin toolchains: $("$langs/py/bin/componentize-py" --version), componentize-js $(installed_js)"
