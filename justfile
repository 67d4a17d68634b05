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

# Build the plugins and start a development node on them (with a local redis-server, and a local PostgreSQL for the job history, their data under .jobhost/)
run *ARGS: plugins redis-server postgresql
    cargo run --bin jobhost -- --config examples/jobhost.toml serve --dev --plugins-dir {{ plugins_out }} {{ ARGS }}

# Install the pinned Python and JavaScript plugin toolchains under target/langs (componentize-py 0.25.1, componentize-js 0.22.0); `just plugins` then builds examples/plugins/hello-py and hello-js too
plugin-toolchains:
    scripts/plugin-toolchains.sh

# Build the plugins and binaries, then run every test against them (tests start their own redis-server; the dashboard test a headless chromium; the Python and JavaScript plugins their toolchains). ARGS go to cargo test, e.g. `just test --test all store::`
test *ARGS: plugin-toolchains plugins redis-server postgresql chromium
    # The plugins' own unit tests, natively: apart from the host's build, so the two never
    # unify features (that would rebuild wasmtime).
    cargo test -p ccip-submit -p jobhost-plugin-sdk --lib
    cargo build --bins
    JOBHOST_TEST_PLUGINS_DIR={{ plugins_out }} cargo test {{ ARGS }}

# The sandbox tests (tests/all/sandbox/) in a VM whose only cgroups are v2 (scripts/cgroup-v2-vm.sh; ARGS go to the test binary)
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

# Install PostgreSQL's server (Debian's package) if this machine has none: the job history of `just run`, and the history tests, start their own from it
postgresql:
    #!/usr/bin/env bash
    set -euo pipefail
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
    command -v initdb >/dev/null && command -v postgres >/dev/null && exit 0
    echo "installing postgresql" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null

# Install Chromium (Debian's package) if this machine has none: the dashboard tests drive it headless
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
    JOBHOST_WASM_TOOLCHAIN={{ quote(wasm_toolchain) }} JOBHOST_PLUGINS_OUT={{ quote(plugins_out) }} scripts/plugins.sh

# Regenerate what the docs derive from the code (docs/configuration.md from examples/jobhost.toml)
docs:
    JOBHOST_BLESS=1 cargo test --test all docs::

# Format check and clippy (host and plugins), warnings are errors
lint:
    cargo fmt --all -- --check
    if ! command -v shellcheck >/dev/null; then \
        echo "installing shellcheck" >&2; \
        sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; \
        $sudo apt-get update -qq; \
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; \
    fi
    shellcheck scripts/*.sh .ci/run host/node/benches/peers/bullmq/run.sh
    cargo clippy --all-targets -- -D warnings
    cargo clippy -p ccip-submit --all-targets -- -D warnings
    if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2 >/dev/null 2>&1; then \
        excludes=$(scripts/plugin-packages.sh) && mapfile -t excludes <<<"$excludes" && \
        cargo clippy --profile plugin --target wasm32-wasip2 --workspace "${excludes[@]}" -- -D warnings; \
    else echo "skipping clippy on plugins: rustup has no wasm32-wasip2 target here"; fi

# Benchmarks, the host crates optimised (opt-level 2, like the dependencies, whose test builds they share; the next `just test` recompiles only the workspace's crates): plugin call overhead (pooling on/off, and an instance kept for 1,000 attempts: opt-in `plugins.<id>.reuse`); jobs/s through gRPC ScheduleJobs on 1 and 2 nodes, and 1 node with noop's instances kept (`reuse = 1000`, opt-in) (submit+run, run alone) with Redis and host CPU per job, Redis bytes per job, a 1M-job soak (JOBHOST_BENCH_SOAK_JOBS) and BullMQ's peer in the same run with the ratios (host/node/benches/peers/bullmq; npm installs bullmq on first use); open-loop latency (JOBHOST_BENCH_RATE, JOBHOST_BENCH_SECS); the job history (node throughput with history off vs on, archive jobs/s into PostgreSQL per batch size); 100k pending timers; spawn in a cgroup
bench: plugins redis-server postgresql
    #!/usr/bin/env bash
    set -euo pipefail
    export CARGO_PROFILE_DEV_OPT_LEVEL=2 CARGO_PROFILE_DEV_DEBUG_ASSERTIONS=false CARGO_PROFILE_DEV_OVERFLOW_CHECKS=false
    export JOBHOST_TEST_PLUGINS_DIR={{ quote(plugins_out) }}
    # throughput runs BullMQ's peer (host/node/benches/peers/bullmq) itself, in the same run.
    for bench in call_overhead throughput history latency timers spawn; do
        cargo bench --profile dev --bench "$bench"
    done

# Fuzz the host's hostile-input paths (fuzz/): each target for SECONDS (default 30; TARGETS: all), then a table of exec counts; crashes land in fuzz/artifacts/<target>/
fuzz SECONDS="30" *TARGETS:
    JOBHOST_PLUGINS_OUT={{ quote(plugins_out) }} scripts/fuzz.sh {{ quote(SECONDS) }} {{ TARGETS }}

# The Python client examples against a fresh development server (venv in target/py), and the OpenAPI document through openapi-spec-validator
example-python: plugins redis-server
    JOBHOST_PLUGINS_OUT={{ quote(plugins_out) }} scripts/example-python.sh

# Start a new plugin from a template: plugins/NAME, in Rust (default), Python or JavaScript (`just new-plugin NAME --lang python`)
new-plugin NAME *FLAGS:
    #!/usr/bin/env bash
    set -euo pipefail
    cd "{{ root }}"
    name="{{ NAME }}"
    lang=rust
    set -- {{ FLAGS }}
    while [ $# -gt 0 ]; do
        case "$1" in
            --lang) lang="${2:-}"; shift 2 || true ;;
            --lang=*) lang="${1#--lang=}"; shift ;;
            *) echo "unknown flag $1 (use --lang rust|python|js)" >&2; exit 2 ;;
        esac
    done
    [[ "$name" =~ ^[a-z][a-z0-9-]{0,40}$ ]] || { echo "plugin name must be lowercase letters, digits and '-'" >&2; exit 2; }
    [ ! -e "plugins/$name" ] || { echo "plugins/$name already exists" >&2; exit 1; }
    case "$lang" in
        rust)
            cp -r examples/plugins/hello "plugins/$name"
            sed -i "s/^name = \"hello\"/name = \"$name\"/" "plugins/$name/Cargo.toml"
            sed -i "s/\"hello\"/\"$name\"/g; s/\`hello\`: the plugin template.*/\`$name\`: a jobhost plugin./" "plugins/$name/src/lib.rs"
            sed -i "s|^    \"examples/plugins/hello\",|    \"plugins/$name\",\n&|" Cargo.toml ;;
        python|py)
            mkdir -p "plugins/$name"
            sed "s/hello-py/$name/g" examples/plugins/hello-py/app.py > "plugins/$name/app.py" ;;
        js|javascript)
            mkdir -p "plugins/$name"
            sed "s/hello-js/$name/g" examples/plugins/hello-js/app.js > "plugins/$name/app.js" ;;
        *) echo "--lang must be rust, python or js" >&2; exit 2 ;;
    esac
    echo "created plugins/$name ($lang); build it with: just plugins (Python and JavaScript need: just plugin-toolchains)"
