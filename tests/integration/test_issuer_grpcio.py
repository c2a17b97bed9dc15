#!/usr/bin/python3
"""The sigil.v1.Issuer API driven directly by Python grpcio over TLS:
authentication, tampered and oversized CSRs, policy, Status and Rotate, and
what sigil-ca's /metrics, /healthz and /readyz say about it."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc

BUILD = os.environ["SIGIL_BUILD_DIR"]
SOURCE = os.environ["SIGIL_SOURCE_DIR"]
FAILURES = []
PASSES = [0]
NODE = "node-a-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef0"


def check(cond, what):
    if cond:
        PASSES[0] += 1
        print("ok   -", what)
    else:
        FAILURES.append(what)
        print("FAIL -", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read().decode()


def metric(text, name, **labels):
    """The value of one sample of the text exposition, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, _, value = line.rpartition(" ")
        if "{" in key:
            n, _, rest = key.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            n, got = key, ""
        if n == name and got == want:
            return float(value)
    return None


def make_csr(tmp, name):
    key = os.path.join(tmp, name + ".key")
    der = os.path.join(tmp, name + ".der")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-subj", "/CN=ignored", "-outform", "DER", "-out", der],
                   check=True, capture_output=True)
    return open(der, "rb").read()


def main():
    tmp = tempfile.mkdtemp(prefix="sigil-issuer-")
    proc = None
    try:
        out = os.path.join(tmp, "py")
        os.makedirs(out)
        subprocess.run(["protoc", "-I" + os.path.join(SOURCE, "proto"), "--python_out=" + out,
                        os.path.join(SOURCE, "proto", "issuer.proto")], check=True)
        sys.path.insert(0, out)
        import issuer_pb2 as pb

        tokens = os.path.join(tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("%s node-a\n%s @admin\n" % (NODE, ADMIN))
        os.chmod(tokens, 0o600)
        port = free_port()
        mport = free_port()
        state = os.path.join(tmp, "state")
        log = open(os.path.join(tmp, "ca.log"), "w")
        proc = subprocess.Popen([os.path.join(BUILD, "sigil-ca"), "--listen", "127.0.0.1:%d" % port,
                                 "--state-dir", state, "--tokens-file", tokens,
                                 "--metrics-addr", "127.0.0.1:%d" % mport], stdout=log, stderr=log)
        bundle = os.path.join(state, "issuer-ca.crt")
        for _ in range(100):
            if os.path.exists(bundle):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        creds = grpc.ssl_channel_credentials(root_certificates=open(bundle, "rb").read())
        ch = grpc.secure_channel("localhost:%d" % port, creds)
        grpc.channel_ready_future(ch).result(timeout=10)

        def call(method, req, resp_cls, token=NODE):
            f = ch.unary_unary("/sigil.v1.Issuer/" + method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=resp_cls.FromString)
            md = [("authorization", "Bearer " + token)] if token else []
            try:
                return grpc.StatusCode.OK, f(req, metadata=md, timeout=20), ""
            except grpc.RpcError as e:
                return e.code(), None, e.details()

        csr = make_csr(tmp, "a")
        good = pb.IssueRequest(class_name="tls", pod=pb.PodIdentity(namespace="default", name="web-0"),
                               scopes=[pb.Scope(kind=pb.Scope.NODE), pb.Scope(kind=pb.Scope.SERVICE, name="web")],
                               csr=csr, lifetime_seconds=3600, jitter_factor=0.0)
        c, r, d = call("Issue", good, pb.IssueResponse)
        check(c == grpc.StatusCode.OK, "Issue over TLS (%s)" % d)
        if r:
            leaf = os.path.join(tmp, "leaf.der")
            open(leaf, "wb").write(r.certificate_chain[0])
            txt = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", leaf, "-noout", "-text"],
                                 capture_output=True, text=True).stdout
            check("DNS:node-a" in txt and "DNS:web.default.svc.cluster.local" in txt,
                  "names come from the token's node and the scopes")
            check("ignored" not in txt, "the CSR's own subject is ignored")
            check(len(r.trust_bundle) >= 1 and r.bundle_version != 0, "trust bundle and version returned")
            check(r.not_after - time.time() <= 3600 + 60, "requested lifetime honoured")

        c, _, _ = call("Issue", good, pb.IssueResponse, token=None)
        check(c == grpc.StatusCode.UNAUTHENTICATED, "no token: UNAUTHENTICATED")
        c, _, _ = call("Issue", good, pb.IssueResponse, token="x" * 40)
        check(c == grpc.StatusCode.UNAUTHENTICATED, "bad token: UNAUTHENTICATED")

        bad = bytearray(csr)
        bad[-5] ^= 0x55  # inside the signature
        req = pb.IssueRequest()
        req.CopyFrom(good)
        req.csr = bytes(bad)
        c, _, d = call("Issue", req, pb.IssueResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "tampered CSR: INVALID_ARGUMENT (%s)" % d)
        req.csr = csr[:40]
        c, _, d = call("Issue", req, pb.IssueResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "truncated CSR: INVALID_ARGUMENT (%s)" % d)
        req.csr = b"\x30" + os.urandom(20000)
        c, _, d = call("Issue", req, pb.IssueResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "oversized CSR: INVALID_ARGUMENT (%s)" % d)
        req.csr = csr
        req.class_name = "nope"
        c, _, _ = call("Issue", req, pb.IssueResponse)
        check(c == grpc.StatusCode.NOT_FOUND, "unknown class: NOT_FOUND")
        req.class_name = "tls"
        req.scopes.append(pb.Scope(kind=pb.Scope.SERVICE, name="Bad_Name!"))
        c, _, _ = call("Issue", req, pb.IssueResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "bad scope name: INVALID_ARGUMENT")
        huge = pb.IssueRequest(class_name="tls", attributes={"k%d" % i: "v" * 1000 for i in range(6000)})
        c, _, _ = call("Issue", huge, pb.IssueResponse)
        check(c in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT),
              "oversized request refused (%s)" % c)

        code, ctype, text = scrape(mport)
        check(code == 200 and ctype.startswith("text/plain; version=0.0.4"), "/metrics answers in the text format")
        check(metric(text, "sigil_ca_issued_total", **{"class": "tls", "result": "success"}) == 1,
              "sigil_ca_issued_total counts the one success")
        fails = metric(text, "sigil_ca_issued_total", **{"class": "tls", "result": "failure"})
        check(fails == 4, "sigil_ca_issued_total counts the 4 refused tls requests, not the "
              "unauthenticated ones (%s)" % fails)
        check(metric(text, "sigil_ca_issued_total", **{"class": "nope", "result": "failure"}) == 1,
              "the unknown class is counted under its own label")
        check(metric(text, "sigil_ca_issue_duration_seconds_count", **{"class": "tls"}) == 5,
              "issuance latency histogram has every counted call")
        check(metric(text, "sigil_ca_generations", **{"class": "tls"}) == 1, "one CA generation before rotation")
        na = metric(text, "sigil_ca_not_after_seconds", **{"class": "tls", "generation": "1"})
        check(na is not None and na > time.time() + 300 * 86400, "CA notAfter gauge (~365 days ahead)")
        check(scrape(mport, "/healthz")[0] == 200 and scrape(mport, "/readyz")[0] == 200, "/healthz and /readyz 200")
        check(scrape(mport, "/nope")[0] == 404, "unknown path 404")

        c, b1, _ = call("GetTrustBundle", pb.GetTrustBundleRequest(class_name="tls"), pb.GetTrustBundleResponse)
        check(c == grpc.StatusCode.OK and len(b1.trust_bundle) == 1, "GetTrustBundle: one CA")
        c, _, _ = call("Rotate", pb.RotateRequest(class_name="tls"), pb.RotateResponse)
        check(c == grpc.StatusCode.PERMISSION_DENIED, "Rotate with a node token: PERMISSION_DENIED")
        c, rr, d = call("Rotate", pb.RotateRequest(class_name="tls"), pb.RotateResponse, token=ADMIN)
        check(c == grpc.StatusCode.OK, "Rotate with the admin token (%s)" % d)
        c, b2, _ = call("GetTrustBundle", pb.GetTrustBundleRequest(class_name="tls"), pb.GetTrustBundleResponse)
        check(c == grpc.StatusCode.OK and len(b2.trust_bundle) == 2 and b2.version != b1.version,
              "after rotation the bundle has 2 CAs and a new version")
        c, st, _ = call("Status", pb.StatusRequest(), pb.StatusResponse)
        check(c == grpc.StatusCode.OK and st.classes[0].name == "tls" and len(st.classes[0].generations) == 2,
              "Status lists both generations")
        text = scrape(mport)[2]
        check(metric(text, "sigil_ca_rotations_total", **{"class": "tls"}) == 1, "sigil_ca_rotations_total counts the rotation")
        check(metric(text, "sigil_ca_generations", **{"class": "tls"}) == 2 and
              metric(text, "sigil_ca_not_after_seconds", **{"class": "tls", "generation": "2"}) is not None,
              "both generations have an expiry gauge")
        c, gc, _ = call("GetClass", pb.GetClassRequest(class_name="tls"), pb.GetClassResponse)
        check(c == grpc.StatusCode.OK and gc.backend == "autoTls" and gc.leaf_key_algorithm == "ecdsa-p256",
              "GetClass")
        c, _, _ = call("NoSuchMethod", pb.StatusRequest(), pb.StatusResponse)
        check(c == grpc.StatusCode.UNIMPLEMENTED, "unknown method: UNIMPLEMENTED")
        ch.close()
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=20) == 0, "sigil-ca exits 0 on SIGTERM")
        proc = None
    finally:
        if proc:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSES[0], len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
