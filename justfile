# jobhost: the only commands a newcomer needs (`just --list` shows them).

set shell := ["bash", "-euo", "pipefail", "-c"]

root := justfile_directory()
plugins_out := root / "target" / "plugins"
# Which toolchain builds plugins: `auto` (rustup's wasm32-wasip2 target when it can be
# installed, else Debian's), `rustup`, or `debian` (forces the fallback of DESIGN.md §8).
wasm_toolchain := env("JOBHOST_WASM_TOOLCHAIN", "auto")

# List the recipes
default:
    @just --list

# Build the plugins and start a development node on them (with a local redis-server)
run *ARGS: plugins redis-server
    cargo run --bin jobhost -- --config examples/jobhost.toml serve --dev --plugins-dir {{ plugins_out }} {{ ARGS }}

# Build the plugins, then run every test against them (tests start their own redis-server; the dashboard test a headless chromium)
test *ARGS: plugins redis-server chromium
    JOBHOST_TEST_PLUGINS_DIR={{ plugins_out }} cargo test {{ ARGS }}

# The sandbox tests (tests/sandbox.rs) in a VM whose only cgroups are v2 (scripts/cgroup-v2-vm.sh; ARGS go to the test binary)
test-cgroup-v2 *ARGS:
    scripts/cgroup-v2-vm.sh {{ ARGS }}

# Install redis-server (Debian's package) if this machine has none
redis-server:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v redis-server >/dev/null && exit 0
    echo "installing redis-server" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null

# Install Chromium (Debian's package) if this machine has none: tests/dashboard.rs drives it headless
chromium:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v chromium >/dev/null && exit 0
    echo "installing chromium" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# Build every plugin to a component: target/plugins/NAME.wasm (test plugins in target/plugins/testing/)
plugins:
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{ root }}"
    target_root="${CARGO_TARGET_DIR:-{{ root }}/target}"
    host_triple=$(rustc -vV | sed -n 's/^host: //p')
    rustup_build() {
        if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
            rustup target add wasm32-wasip2 >/dev/null 2>&1 || return 2
        fi
        cargo build --profile plugin --target wasm32-wasip2 --workspace --exclude jobhost
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
                --workspace --exclude jobhost
        built="$target_root/wasm-fallback/wasm32-wasip2/plugin"
    }
    case "{{ wasm_toolchain }}" in
        rustup) rustup_build || { echo "rustup cannot provide wasm32-wasip2" >&2; exit 1; } ;;
        debian) debian_build ;;
        auto)
            status=0; rustup_build || status=$?
            if [ "$status" = 2 ]; then
                echo "rustup cannot install wasm32-wasip2 here; building with Debian's toolchain" >&2
                debian_build
            elif [ "$status" != 0 ]; then exit "$status"; fi ;;
        *) echo "JOBHOST_WASM_TOOLCHAIN must be auto, rustup or debian" >&2; exit 2 ;;
    esac
    mkdir -p "{{ plugins_out }}/testing"
    for manifest in plugins/*/Cargo.toml plugins/testing/*/Cargo.toml examples/plugins/*/Cargo.toml; do
        dir=$(dirname "$manifest")
        [ "$dir" = plugins/sdk ] && continue
        name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -1)
        dest="{{ plugins_out }}"; case "$dir" in plugins/testing/*) dest="$dest/testing" ;; esac
        for artifact in "$built/${name//-/_}.wasm" "$built/$name.wasm"; do
            if [ -f "$artifact" ]; then
                # Copy then rename, so a watching host never reads a half-written file.
                cp "$artifact" "$dest/.$name.wasm.tmp" && mv "$dest/.$name.wasm.tmp" "$dest/$name.wasm"
                break
            fi
        done
        [ -f "$dest/$name.wasm" ] || { echo "no component built for $dir" >&2; exit 1; }
    done
    echo "plugins in {{ plugins_out }}: $(cd "{{ plugins_out }}" && ls *.wasm | tr '\n' ' ')"

# Format check and clippy (host and plugins), warnings are errors
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings
    if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then \
        cargo clippy --profile plugin --target wasm32-wasip2 --workspace --exclude jobhost -- -D warnings; \
    else echo "skipping clippy on plugins: rustup has no wasm32-wasip2 target here"; fi

# Benchmarks: plugin call overhead (pooling on/off), jobs/s through Redis, 100k pending timers
bench: plugins redis-server
    JOBHOST_TEST_PLUGINS_DIR={{ plugins_out }} cargo bench --profile dev --bench call_overhead
    JOBHOST_TEST_PLUGINS_DIR={{ plugins_out }} cargo bench --profile dev --bench throughput
    JOBHOST_TEST_PLUGINS_DIR={{ plugins_out }} cargo bench --profile dev --bench timers
    cargo bench --profile dev --bench spawn

# Fuzz the host's hostile-input paths (fuzz/): each target for SECONDS (default 30; TARGETS: all), then a table of exec counts; crashes land in fuzz/artifacts/<target>/
fuzz SECONDS="30" *TARGETS:
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{ root }}/fuzz"
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    # cargo-fuzz needs nightly flags (-Zsanitizer): nightly when rustup has it, else stable
    # with RUSTC_BOOTSTRAP=1.
    if cargo +nightly --version >/dev/null 2>&1; then
        fuzz=(cargo +nightly fuzz)
    else
        fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
    fi
    # Its own build directory: sanitizer flags would otherwise rebuild the test build.
    target_dir="${JOBHOST_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-{{ root }}/target}/fuzz}"
    build=("${fuzz[@]}" build --target-dir "$target_dir" --codegen-units 16)
    targets=({{ TARGETS }})
    if [ ${#targets[@]} = 0 ]; then
        # The slow one (wasmtime compiles each input) last.
        targets=($("${fuzz[@]}" list | grep -vx plugin_loader) plugin_loader)
        nice -n 19 "${build[@]}"
    else
        for t in "${targets[@]}"; do nice -n 19 "${build[@]}" "$t"; done
    fi
    bin_dir="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"
    logs=$(mktemp -d); trap 'rm -rf "$logs"' EXIT
    failed=0
    summary=()
    for t in "${targets[@]}"; do
        [ -x "$bin_dir/$t" ] || { echo "no fuzz target $t" >&2; exit 2; }
        mkdir -p "corpus/$t" "artifacts/$t"
        dirs=("corpus/$t"); for d in "seeds/$t" "regressions/$t"; do [ -d "$d" ] && dirs+=("$d"); done
        args=(-max_total_time="{{ SECONDS }}" -print_final_stats=1 -artifact_prefix="artifacts/$t/")
        if [ "$t" = plugin_loader ]; then
            # Real components as seeds (`just plugins` builds them); compiling one takes time.
            [ -d "{{ plugins_out }}" ] && dirs+=("{{ plugins_out }}")
            args+=(-max_len=1048576 -timeout=60 -rss_limit_mb=4096)
        else
            # Text inputs: the huge kept ones are replayed by the tests, not mutated.
            args+=(-max_len=65536 -timeout=10)
        fi
        echo "--- fuzzing $t for {{ SECONDS }} s" >&2
        start=$(date +%s); status=0
        nice -n 19 "$bin_dir/$t" "${args[@]}" "${dirs[@]}" > "$logs/$t.log" 2>&1 || status=$?
        took=$(( $(date +%s) - start ))
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
        corpus=$(find "corpus/$t" -type f | wc -l)
        verdict=ok
        if [ "$status" != 0 ]; then
            failed=1
            artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$logs/$t.log" | tail -1)
            verdict="FAILED (exit $status) ${artifact:-see log}"
            tail -40 "$logs/$t.log" >&2
            cp "$logs/$t.log" "artifacts/$t/last-run.log"
        fi
        summary+=("$(printf '%-18s %10s %9s %6s %8s  %s' "$t" "${execs:-?}" "${rate:-?}" "${took}s" "$corpus" "$verdict")")
    done
    printf '\n%-18s %10s %9s %6s %8s  %s\n' target execs exec/s time corpus result
    printf '%s\n' "${summary[@]}"
    if [ "$failed" = 1 ]; then
        echo "a target failed: keep the input in fuzz/regressions/<target>/ with the fix (tests/fuzz_regressions.rs replays it)" >&2
        exit 1
    fi

# The Python client examples against a fresh development server (venv in target/py), and the OpenAPI document through openapi-spec-validator
example-python: plugins redis-server
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{ root }}"
    venv="{{ root }}/target/py"
    [ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r examples/clients/python/requirements.txt
    PATH="$venv/bin:$PATH" examples/clients/python/generate.sh
    cargo build -q --bin jobhost
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    work=$(mktemp -d); port=$(free_port); http_port=$(free_port)
    # A stand-in Chainlink node for the Job Distributor path, and the nodes file naming it.
    "$venv/bin/python3" examples/clients/python/fake_chainlink.py --email ci@node.test --password ci-pass > "$work/chainlink.port" &
    chainlink=$!
    for _ in $(seq 100); do [ -s "$work/chainlink.port" ] && break; sleep 0.1; done
    cl_url="http://127.0.0.1:$(cat "$work/chainlink.port")"
    printf 'nodes:\n  - name: python-node\n    chainlink_url: "%s"\n    chainlink_email: ci@node.test\n    chainlink_password: ci-pass\n' "$cl_url" > "$work/nodes.yaml"
    printf '[redis]\ndev_dir = "%s/redis"\n[jd]\nnodes_file = "%s/nodes.yaml"\n[plugins.ccip-submit]\ngrants = ["http"]\nallowed_hosts = ["%s"]\n' "$work" "$work" "$cl_url" > "$work/jobhost.toml"
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    "$target_dir/debug/jobhost" --config "$work/jobhost.toml" serve --dev \
        --plugins-dir "{{ plugins_out }}" --grpc-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$http_port" 2> "$work/serve.log" &
    server=$!
    trap 'kill -TERM $server $chainlink 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
    for _ in $(seq 100); do grep -q "gRPC API listening" "$work/serve.log" && break; sleep 0.1; done
    "$venv/bin/python3" examples/clients/python/schedule.py --server "127.0.0.1:$port" \
        --type hello --spec '{"name": "Python"}'
    "$venv/bin/python3" examples/clients/python/jd_client.py --server "127.0.0.1:$port" --node-name python-node
    # The HTTP API's OpenAPI document, checked by an independent validator.
    "$venv/bin/pip" install -q "openapi-spec-validator>=0.7,<1"
    "$venv/bin/python3" -c 'import json, sys, urllib.request; from openapi_spec_validator import validate; validate(json.load(urllib.request.urlopen(sys.argv[1]))); print("openapi.json: valid")' "http://127.0.0.1:$http_port/openapi.json"

# Start a new plugin from the template: plugins/NAME
new-plugin NAME:
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{ root }}"
    name="{{ NAME }}"
    [[ "$name" =~ ^[a-z][a-z0-9-]{0,40}$ ]] || { echo "plugin name must be lowercase letters, digits and '-'" >&2; exit 2; }
    [ ! -e "plugins/$name" ] || { echo "plugins/$name already exists" >&2; exit 1; }
    cp -r examples/plugins/hello "plugins/$name"
    sed -i "s/^name = \"hello\"/name = \"$name\"/" "plugins/$name/Cargo.toml"
    sed -i "s/\"hello\"/\"$name\"/g; s/\`hello\`: the plugin template.*/\`$name\`: a jobhost plugin./" "plugins/$name/src/lib.rs"
    sed -i "s|^    \"examples/plugins/hello\",|    \"plugins/$name\",\n&|" Cargo.toml
    echo "created plugins/$name; build it with: just plugins"
