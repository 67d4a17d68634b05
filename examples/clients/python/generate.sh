#!/usr/bin/env bash
# Generates Python stubs for the jobhost scheduler API and the Chainlink Job Distributor API
# from proto/ into ./gen.
# Needs grpcio-tools (pip install -r requirements.txt).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto="$here/../../../proto"
mkdir -p "$here/gen"
python3 -m grpc_tools.protoc -I "$proto" \
    --python_out="$here/gen" --grpc_python_out="$here/gen" \
    "$proto/jobhost/v1/scheduler.proto" \
    "$proto/v1/shared/ptypes/label.proto" "$proto/v1/job/job.proto" \
    "$proto/v1/node/node.proto" "$proto/v1/csa/csa.proto"
# Make the generated packages importable (jobhost/v1/..., v1/...).
for pkg in jobhost jobhost/v1 v1 v1/shared v1/shared/ptypes v1/job v1/node v1/csa; do
    touch "$here/gen/$pkg/__init__.py"
done
echo "stubs written to $here/gen"
