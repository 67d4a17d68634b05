#!/usr/bin/env bash
# Generates Python stubs for the jobhost scheduler API from proto/ into ./gen.
# Needs grpcio-tools (pip install -r requirements.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto="$here/../../../proto"
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$proto" \
    --python_out="$here/gen" --grpc_python_out="$here/gen" \
    "$proto/jobhost/v1/scheduler.proto"
# Make the generated packages importable (jobhost/v1/...).
touch "$here/gen/jobhost/__init__.py" "$here/gen/jobhost/v1/__init__.py"
echo "stubs written to $here/gen"
