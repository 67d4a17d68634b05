#!/usr/bin/env python3
"""Schedules one job on a jobhost server and waits for it to end.

    ./generate.sh                        # once: stubs from proto/
    python3 schedule.py --type hello --spec '{"name": "Ada"}'

Exits 0 if the job SUCCEEDED, 1 if it ended otherwise or the request failed.

An UNAVAILABLE answer does not mean the job was not created (the answer may have been lost
after Redis wrote it), so the request carries an idempotency key and is retried with the
same key: however many tries it takes, it creates one job.
"""

import argparse
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from jobhost.v1 import scheduler_pb2 as pb  # noqa: E402
from jobhost.v1 import scheduler_pb2_grpc as rpc  # noqa: E402

FINAL = {
    pb.JOB_STATE_SUCCEEDED,
    pb.JOB_STATE_FAILED,
    pb.JOB_STATE_CANCELLED,
    pb.JOB_STATE_DEAD,
}


def schedule(client, request, tries=6):
    """ScheduleJob, retrying UNAVAILABLE with backoff; the request's idempotency key makes
    the retries safe."""
    delay = 0.2
    for attempt in range(tries):
        try:
            return client.ScheduleJob(request)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == tries - 1:
                raise
            print(f"UNAVAILABLE ({e.details()}); retrying with the same key", file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("JOBHOST_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--type", required=True, help="job type")
    parser.add_argument("--spec", default="", help="job spec")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    args = parser.parse_args()

    server = args.server.split("://", 1)[-1]
    with grpc.insecure_channel(server) as channel:
        client = rpc.JobSchedulerStub(channel)
        try:
            request = pb.ScheduleJobRequest(
                job_type=args.type, spec=args.spec, idempotency_key=f"schedule.py-{uuid.uuid4()}"
            )
            job = schedule(client, request).job
        except grpc.RpcError as e:
            print(f"schedule failed: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        print(f"scheduled {job.id} ({pb.JobState.Name(job.state)})")
        deadline = time.monotonic() + args.timeout
        while job.state not in FINAL:
            if time.monotonic() > deadline:
                print(f"job {job.id} still {pb.JobState.Name(job.state)}", file=sys.stderr)
                return 1
            time.sleep(0.2)
            job = client.GetJob(pb.GetJobRequest(job_id=job.id)).job
        state = pb.JobState.Name(job.state)
        print(f"job {job.id} {state}: {job.output or job.reason}")
        return 0 if job.state == pb.JOB_STATE_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
