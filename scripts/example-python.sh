#!/usr/bin/env bash
# Runs the Python client examples (examples/clients/python/) against a fresh development
# server: sets up a venv in target/py, generates the gRPC stubs, builds the host binaries,
# starts a stand-in Chainlink node and `jobhost serve --dev` on free ports, runs schedule.py
# and jd_client.py, then checks the HTTP API's OpenAPI document with openapi-spec-validator.
# Needs the plugins built (`just plugins`) and a redis-server on PATH; `just example-python`
# provides both, then runs it.
#
#   scripts/example-python.sh          (no arguments)
#
# Environment:
#   JOBHOST_PLUGINS_OUT  the built plugins the server loads (default target/plugins of the repository)
#   CARGO_TARGET_DIR     respected (the server binary is taken from cargo's target directory)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plugins_out=${JOBHOST_PLUGINS_OUT:-$root/target/plugins}
cd "$root"
venv="$root/target/py"
[ -x "$venv/bin/python3" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q -r examples/clients/python/requirements.txt
PATH="$venv/bin:$PATH" examples/clients/python/generate.sh
# All the host's binaries, i.e. the package selection of `cargo test`: no dependency is
# rebuilt with other features just for this one binary.
cargo build -q --bins
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
    --plugins-dir "$plugins_out" --grpc-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$http_port" 2> "$work/serve.log" &
server=$!
trap 'kill -TERM $server $chainlink 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "gRPC API listening" "$work/serve.log" && break; sleep 0.1; done
"$venv/bin/python3" examples/clients/python/schedule.py --server "127.0.0.1:$port" \
    --type hello --spec '{"name": "Python"}'
"$venv/bin/python3" examples/clients/python/jd_client.py --server "127.0.0.1:$port" --node-name python-node
# The HTTP API's OpenAPI document, checked by an independent validator.
"$venv/bin/pip" install -q "openapi-spec-validator>=0.7,<1"
"$venv/bin/python3" -c 'import json, sys, urllib.request; from openapi_spec_validator import validate; validate(json.load(urllib.request.urlopen(sys.argv[1]))); print("openapi.json: valid")' "http://127.0.0.1:$http_port/openapi.json"
