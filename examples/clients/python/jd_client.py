#!/usr/bin/env python3
"""The Job Distributor main path, as the CCIP deployer walks it, through stubs generated from
proto/v1: the JD's CSA key, a node registering itself, a job spec proposed to it, and the
proposal approved and delivered to the node.

    ./generate.sh
    python3 jd_client.py --server 127.0.0.1:50051 --node-name chainlink-node-1

Exits 0 once the proposal is DELIVERED; 1 otherwise.
"""

import argparse
import os
import secrets
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from v1.csa import csa_pb2, csa_pb2_grpc  # noqa: E402
from v1.job import job_pb2, job_pb2_grpc  # noqa: E402
from v1.node import node_pb2, node_pb2_grpc  # noqa: E402
from v1.shared.ptypes import label_pb2  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("JD_GRPC_URL", "127.0.0.1:50051"))
    parser.add_argument("--node-name", required=True, help="as in the JD's nodes file")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args()

    with grpc.insecure_channel(args.server.split("://", 1)[-1]) as channel:
        csa = csa_pb2_grpc.CSAServiceStub(channel)
        nodes = node_pb2_grpc.NodeServiceStub(channel)
        jobs = job_pb2_grpc.JobServiceStub(channel)

        key = csa.GetKeypair(csa_pb2.GetKeypairRequest()).keypair.public_key
        print(f"JD CSA public key: {key}")

        public_key = secrets.token_hex(32)
        register = node_pb2.RegisterNodeRequest(
            name=args.node_name,
            public_key=public_key,
            labels=[label_pb2.Label(key="product", value="ccip")],
        )
        node = nodes.RegisterNode(register).node
        print(f"registered node {node.name}: id {node.id}, enabled {node.is_enabled}")
        try:
            nodes.RegisterNode(register)
            print("a second registration with the same key was accepted", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
        selector = label_pb2.Selector(key="product", op=label_pb2.IN, value="ccip, data-feeds")
        listed = nodes.ListNodes(node_pb2.ListNodesRequest(
            filter=node_pb2.ListNodesRequest.Filter(selectors=[selector])))
        print(f"nodes with product in (ccip, data-feeds): {listed.total_count}")

        spec = f'type = "offchainreporting2"\nschemaVersion = 1\nexternalJobID = "{uuid.uuid4()}"\n'
        proposal = jobs.ProposeJob(job_pb2.ProposeJobRequest(node_id=node.id, spec=spec)).proposal
        print(f"proposal {proposal.id}: revision {proposal.revision}, "
              f"{job_pb2.ProposalStatus.Name(proposal.status)}")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            proposal = jobs.GetProposal(job_pb2.GetProposalRequest(id=proposal.id)).proposal
            if proposal.delivery_status == job_pb2.PROPOSAL_DELIVERY_STATUS_DELIVERED:
                print(f"proposal {proposal.id} delivered to {node.name}")
                return 0
            time.sleep(0.2)
        status = job_pb2.ProposalDeliveryStatus.Name(proposal.delivery_status)
        print(f"proposal {proposal.id} not delivered: {status}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
