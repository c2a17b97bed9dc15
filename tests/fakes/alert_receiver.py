#!/usr/bin/python3
"""A fake Alertmanager alert receiver for sigil's tests (stdlib only).

Serves `POST /api/v2/alerts` on 127.0.0.1 as Alertmanager API v2 does: the
body must be a JSON array of postableAlerts (labels as a non-empty string
map with "alertname"; annotations a string map; startsAt/endsAt RFC 3339;
generatorURL a string); a malformed body is answered 400 as Alertmanager
does, a good one 200.  Every request is recorded.

Usage: alert_receiver.py [--port N] [--port-file PATH]
  --port 0 (default) picks a free port; the bound port is written to
  --port-file (atomically) or printed on stdout.

Control (JSON bodies):
  POST /_fake/config  {"reset": true}  forget requests and settings
                      {"fail": n}      answer the next n alert POSTs with
                                       "status" (default 500)
                      {"status": code} status used by "fail"
                      {"hang": true}   hold alert POSTs without answering
                                       until {"hang": false} (or 120 s)
  GET  /_fake/requests  [{"path","status","authorization","contentType",
                          "body" (parsed JSON or null),"raw"}] of answered
                        alert POSTs
  GET  /_fake/state     {"inflight": n, "requests": n}
"""

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
MAX_BODY = 1 << 20

lock = threading.Lock()
cond = threading.Condition(lock)
state = {"fail": 0, "status": 500, "hang": False, "inflight": 0, "requests": [], "gen": 0}


def valid_alerts(body):
    """Alertmanager's postableAlerts validation, the parts sigil relies on."""
    if not isinstance(body, list):
        return False
    for a in body:
        if not isinstance(a, dict):
            return False
        if set(a) - {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}:
            return False
        labels = a.get("labels")
        if not isinstance(labels, dict) or not labels or "alertname" not in labels:
            return False
        for m in ("labels", "annotations"):
            for k, v in a.get(m, {}).items():
                if not isinstance(k, str) or not isinstance(v, str):
                    return False
        for k in ("startsAt", "endsAt"):
            if k in a and not (isinstance(a[k], str) and RFC3339.match(a[k])):
                return False
        if "generatorURL" in a and not isinstance(a["generatorURL"], str):
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj=None):
        data = b"" if obj is None else json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout, stop): expected in tests

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def do_GET(self):
        with lock:
            if self.path == "/_fake/requests":
                obj = list(state["requests"])
            elif self.path == "/_fake/state":
                obj = {"inflight": state["inflight"], "requests": len(state["requests"])}
            else:
                obj = None
        if obj is None:
            self.answer(404, {"error": "not found"})
        else:
            self.answer(200, obj)

    def do_POST(self):
        raw = self.read_body()
        if raw is None:
            self.answer(413, {"error": "body too large"})
            return
        if self.path == "/_fake/config":
            cfg = json.loads(raw or b"{}")
            with lock:
                if cfg.get("reset"):
                    # Requests still held from before are not recorded.
                    state.update(fail=0, status=500, hang=False, requests=[],
                                 gen=state["gen"] + 1)
                for k in ("fail", "status", "hang"):
                    if k in cfg:
                        state[k] = cfg[k]
                cond.notify_all()
            self.answer(200, {})
            return
        if self.path != "/api/v2/alerts":
            self.answer(404, {"error": "not found"})
            return
        with lock:
            gen = state["gen"]
            state["inflight"] += 1
            cond.wait_for(lambda: not state["hang"], timeout=120)
            state["inflight"] -= 1
            stale = gen != state["gen"]  # held across a reset: not this test's
            if stale:
                status = 500
            elif state["fail"] > 0:
                state["fail"] -= 1
                status = state["status"]
            else:
                status = None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if status is None:
            status = 200 if valid_alerts(body) else 400
        self.record(gen, status, body, raw)
        self.answer(status, None if status == 200 else {"error": "injected or invalid"})

    def record(self, gen, status, body, raw):
        with lock:
            if gen != state["gen"]:
                return
            state["requests"].append({
                "path": self.path,
                "status": status,
                "authorization": self.headers.get("Authorization"),
                "contentType": self.headers.get("Content-Type"),
                "body": body,
                "raw": raw.decode("utf-8", "replace"),
            })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
