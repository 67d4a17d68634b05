#!/usr/bin/env bash
# Builds every plugin of the workspace to a WASI component (wasm32-wasip2, cargo profile
# `plugin`) and copies them to OUT/NAME.wasm (test plugins, plugins/testing/*, to
# OUT/testing/NAME.wasm). Every workspace package under host/ is left out of the build
# (scripts/plugin-packages.sh). `just plugins` runs it.
#
#   scripts/plugins.sh            (no arguments)
#
# Environment:
#   JOBHOST_PLUGINS_OUT      OUT, where the components go (default target/plugins of the repository)
#   JOBHOST_WASM_TOOLCHAIN   auto (default: rustup's wasm32-wasip2 target when it can be
#                            installed, else Debian's), rustup, or debian (forces the fallback of
#                            DESIGN.md §8: Debian's rustc with -Zbuild-std and wasi-libc)
#   CARGO_TARGET_DIR         cargo's build directory (default target/ of the repository)
#
# Then the Python and JavaScript examples (examples/plugins/hello-py, hello-js) with the
# pinned toolchains of scripts/plugin-toolchains.sh, when they are installed; otherwise it
# says how to install them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugins_out=${JOBHOST_PLUGINS_OUT:-$root/target/plugins}
wasm_toolchain=${JOBHOST_WASM_TOOLCHAIN:-auto}
cd "$root"
target_root="${CARGO_TARGET_DIR:-$root/target}"
host_triple=$(rustc -vV | sed -n 's/^host: //p')
# --exclude NAME for each host crate.
excludes=$("$root/scripts/plugin-packages.sh")
mapfile -t excludes <<<"$excludes"
rustup_build() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2 >/dev/null 2>&1 || return 2
    fi
    # `|| return 1`: called as `rustup_build || ...`, where set -e does not stop the function.
    cargo build --profile plugin --target wasm32-wasip2 --workspace "${excludes[@]}" || return 1
    built="$target_root/wasm32-wasip2/plugin"
}
debian_build() {
    if [ ! -x /usr/bin/rustc ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
        echo "installing Debian's Rust toolchain and WASI libc (rustc-web rust-web-src wasi-libc)" >&2
        sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web rust-web-src wasi-libc >/dev/null
    fi
    # The linker shims (gcc-ld, wasm-component-ld) come from the rustup toolchain.
    tb="$(rustc --print sysroot)/lib/rustlib/$host_triple/bin"
    PATH="$tb/gcc-ld:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_WASIP2_LINKER="$tb/wasm-component-ld" \
    RUSTFLAGS="-L /usr/lib/wasm32-wasi -C link-self-contained=no" \
    CARGO_TARGET_DIR="$target_root/wasm-fallback" \
        cargo build --profile plugin --target wasm32-wasip2 -Zbuild-std=std,panic_abort \
            --workspace "${excludes[@]}"
    built="$target_root/wasm-fallback/wasm32-wasip2/plugin"
}
case "$wasm_toolchain" in
    rustup)
        status=0; rustup_build || status=$?
        if [ "$status" = 2 ]; then
            echo "rustup cannot provide wasm32-wasip2" >&2; exit 1
        elif [ "$status" != 0 ]; then exit "$status"; fi ;;
    debian) debian_build ;;
    auto)
        status=0; rustup_build || status=$?
        if [ "$status" = 2 ]; then
            echo "rustup cannot install wasm32-wasip2 here; building with Debian's toolchain" >&2
            debian_build
        elif [ "$status" != 0 ]; then exit "$status"; fi ;;
    *) echo "JOBHOST_WASM_TOOLCHAIN must be auto, rustup or debian" >&2; exit 2 ;;
esac
mkdir -p "$plugins_out/testing"
for manifest in plugins/*/Cargo.toml plugins/testing/*/Cargo.toml examples/plugins/*/Cargo.toml; do
    dir=$(dirname "$manifest")
    [ "$dir" = plugins/sdk ] && continue
    name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
    dest="$plugins_out"; case "$dir" in plugins/testing/*) dest="$dest/testing" ;; esac
    for artifact in "$built/${name//-/_}.wasm" "$built/$name.wasm"; do
        if [ -f "$artifact" ]; then
            # Copy then rename, so a watching host never reads a half-written file.
            cp "$artifact" "$dest/.$name.wasm.tmp" && mv "$dest/.$name.wasm.tmp" "$dest/$name.wasm"
            break
        fi
    done
    [ -f "$dest/$name.wasm" ] || { echo "no component built for $dir" >&2; exit 1; }
done
# Python and JavaScript plugins (a folder under plugins/ or examples/plugins/ holding app.py
# or app.js), with the toolchains under target/langs (just plugin-toolchains); each is
# rebuilt only when its folder or wit/ changed (a build takes 10-20 s).
langs="$root/target/langs"
py_tool="$langs/py/bin/componentize-py"
js_tool="$langs/js/node_modules/.bin/componentize-js"
fresh() { # OUTPUT SOURCE...: OUTPUT exists and nothing in SOURCE is newer
    [ -f "$1" ] && [ -z "$(find "${@:2}" -newer "$1" -print -quit)" ]
}
for app in plugins/*/app.py examples/plugins/*/app.py plugins/*/app.js examples/plugins/*/app.js; do
    [ -f "$app" ] || continue
    dir=$(dirname "$app"); name=$(basename "$dir"); out="$plugins_out/$name.wasm"
    tmp="$plugins_out/.$name.wasm.tmp"
    case "$app" in
        *.py) tool=$py_tool; install_hint="componentize-py" ;;
        *.js) tool=$js_tool; install_hint="componentize-js" ;;
    esac
    if [ ! -x "$tool" ]; then
        echo "skipping $dir: no $install_hint (install it: just plugin-toolchains)" >&2
        continue
    fi
    fresh "$out" "$dir" wit "$tool" && continue
    case "$app" in
        *.py) "$tool" -d wit -w job-plugin componentize -p "$dir" app -o "$tmp" >/dev/null ;;
        *.js) "$tool" "$app" --wit wit -n job-plugin -o "$tmp" >/dev/null ;;
    esac
    mv "$tmp" "$out"
done
echo "plugins in $plugins_out: $(cd "$plugins_out" && printf '%s ' *.wasm)"
