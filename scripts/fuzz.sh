#!/usr/bin/env bash
# Fuzzes the host's hostile-input paths (the cargo-fuzz targets of fuzz/): builds them
# (installing cargo-fuzz when missing), runs each target for SECONDS, then prints a table
# of exec counts, rates and corpus sizes. Crashes land in fuzz/artifacts/<target>/ (with
# the run's log); exits 1 when a target failed. `just fuzz` runs it.
#
#   scripts/fuzz.sh [SECONDS [TARGET...]]     SECONDS per target (default 30); no TARGET: all
#                                             (plugin_loader, the slow one, last)
#
# Environment:
#   JOBHOST_FUZZ_TARGET_DIR  build directory of the fuzz targets (default $CARGO_TARGET_DIR/fuzz,
#                            else target/fuzz of the repository)
#   JOBHOST_PLUGINS_OUT      built plugins (`just plugins`), seeds of plugin_loader when present
#                            (default target/plugins of the repository)
#   CARGO_TARGET_DIR         see JOBHOST_FUZZ_TARGET_DIR
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugins_out=${JOBHOST_PLUGINS_OUT:-$root/target/plugins}
seconds=${1:-30}
targets=("${@:2}")
cd "$root/fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# cargo-fuzz needs nightly flags (-Zsanitizer): nightly when rustup has it, else stable
# with RUSTC_BOOTSTRAP=1.
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
# Its own build directory: sanitizer flags would otherwise rebuild the test build.
target_dir="${JOBHOST_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}"
build=("${fuzz[@]}" build --target-dir "$target_dir" --codegen-units 16)
if [ ${#targets[@]} = 0 ]; then
    # The slow one (wasmtime compiles each input) last.
    listed=$("${fuzz[@]}" list)
    mapfile -t targets < <(grep -vx plugin_loader <<<"$listed")
    targets+=(plugin_loader)
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
    args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="artifacts/$t/")
    if [ "$t" = plugin_loader ]; then
        # Real components as seeds (`just plugins` builds them); compiling one takes time.
        [ -d "$plugins_out" ] && dirs+=("$plugins_out")
        args+=(-max_len=1048576 -timeout=60 -rss_limit_mb=4096)
    else
        # Text inputs: the huge kept ones are replayed by the tests, not mutated.
        args+=(-max_len=65536 -timeout=10)
    fi
    echo "--- fuzzing $t for $seconds s" >&2
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
    echo "a target failed: keep the input in fuzz/regressions/<target>/ with the fix (tests/all/fuzz_regressions.rs replays it)" >&2
    exit 1
fi
