#!/usr/bin/env python3
"""A stand-in Chainlink node for the Job Distributor example: the parts of its HTTP API that
jobhost's ccip-submit plugin uses (POST /sessions with a clsession cookie, POST /v2/jobs,
DELETE /v2/jobs/<id>, GET /health). Prints its port, then serves until killed.

    python3 fake_chainlink.py --email admin@node.test --password secret
"""

import argparse
import json
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    sessions: set[str] = set()
    jobs: dict[str, str] = {}

    class Node(BaseHTTPRequestHandler):
        def log_message(self, *_):  # quiet
            pass

        def answer(self, status, body=None, cookie=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if cookie:
                self.send_header("Set-Cookie", f"clsession={cookie}; Path=/; HttpOnly")
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

        def session(self):
            for part in self.headers.get("Cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == "clsession" and value in sessions:
                    return True
            self.answer(401, {"errors": [{"detail": "Unauthorized"}]})
            return False

        def do_GET(self):
            self.answer(200 if self.path == "/health" else 404, {"data": []})

        def do_POST(self):
            if self.path == "/sessions":
                login = self.body()
                if (login.get("email"), login.get("password")) != (args.email, args.password):
                    return self.answer(401, {"errors": [{"detail": "Invalid password"}]})
                token = secrets.token_hex(16)
                sessions.add(token)
                return self.answer(200, {"data": {"type": "session", "id": "sessionID",
                                                  "attributes": {"authenticated": True}}}, token)
            if self.path == "/v2/jobs" and self.session():
                job_id = str(len(jobs) + 1)
                jobs[job_id] = self.body().get("toml", "")
                return self.answer(200, {"data": {"type": "jobs", "id": job_id, "attributes": {}}})

        def do_DELETE(self):
            if self.path.startswith("/v2/jobs/") and self.session():
                found = jobs.pop(self.path.rsplit("/", 1)[-1], None)
                return self.answer(204 if found is not None else 404,
                                   None if found is not None else {"errors": [{"detail": "JobSpec not found"}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
