#!/usr/bin/python3
"""A fake HashiCorp Vault PKI secrets engine for sigil's tests.

Serves POST /v1/<mount>/sign/<role> the way Vault does (request fields,
response shape, error shapes and status codes) and signs the CSR for real
with the openssl CLI.  Only the Python standard library is used.

Real Vault behaviour reproduced:
  - X-Vault-Token is checked first: missing or wrong -> 403
    {"errors":["permission denied"]}.
  - Malformed JSON body -> 400 {"errors":["error parsing JSON"]}.
  - Unknown role -> 400 {"errors":["unknown role: <role>"]}; unknown route
    -> 404 {"errors":["no handler for route ..."]}; other methods -> 405.
  - Success -> 200 {"request_id", "lease_id", "renewable", "lease_duration",
    "data": {"certificate", "issuing_ca", "ca_chain", "serial_number",
    "expiration"}, "wrap_info", "warnings", "auth"}.  ca_chain starts with
    the issuing CA; self-signed roots are left out when the request says
    remove_roots_from_chain.

Misbehaving CAs for negative tests are chosen by the role name:
  ok, garbage (not JSON), truncjson, slow (sleeps --slow-secs), otherkey
  (a certificate for a different key), keeproot (an old Vault that ignores
  remove_roots_from_chain), badchain (ca_chain skips the intermediate),
  huge (a 2 MiB body), hugestream (the same without Content-Length, cut
  off by closing the connection), sealed (503 "Vault is sealed"), truncpem, badpem,
  cacert (CA:TRUE leaf), expired (notAfter = now), nodata (200 without
  "data"), textcert (certificate is a number), bundle (the chain travels in
  "certificate" after the leaf, ca_chain empty), html502 (a proxy's HTML
  502 page).

Usage:
  vault_fake.py --ca-cert INT.crt --ca-key INT.key [--parent ROOT.crt ...]
                --token-file FILE [--mount pki] [--port 0] --port-file FILE
                [--tls-cert C --tls-key K] [--slow-secs 5]
The chosen port is written to --port-file once the socket listens.
"""

import argparse
import base64
import json
import math
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENSSL = "/usr/bin/openssl"
MAX_BODY = 1024 * 1024
BEHAVIOURS = {
    "ok", "garbage", "truncjson", "slow", "otherkey", "keeproot", "badchain",
    "huge", "sealed", "truncpem", "badpem", "cacert", "expired", "nodata",
    "textcert", "hugestream", "bundle", "html502",
}


def read_pem_certs(path):
    text = open(path).read()
    out, cur = [], []
    for line in text.splitlines():
        if line.startswith("-----BEGIN CERTIFICATE-----"):
            cur = [line]
        elif line.startswith("-----END CERTIFICATE-----"):
            cur.append(line)
            out.append("\n".join(cur) + "\n")
            cur = []
        elif cur:
            cur.append(line)
    return out


class SignError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_ttl(ttl):
    """Vault accepts a duration string ("86400s", "24h", "30m") or seconds."""
    if isinstance(ttl, int) and not isinstance(ttl, bool):
        secs = ttl
    elif isinstance(ttl, str) and ttl:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            if ttl[-1] in units:
                secs = int(ttl[:-1]) * units[ttl[-1]]
            else:
                secs = int(ttl)
        except ValueError:
            raise SignError(400, "error converting input %s for field \"ttl\"" % ttl)
    else:
        raise SignError(400, "error converting input for field \"ttl\"")
    if secs <= 0:
        raise SignError(400, "ttl must be positive")
    return secs


def split_list(value, field):
    if value is None:
        return []
    if not isinstance(value, str):
        raise SignError(400, "error converting input for field \"%s\"" % field)
    return [v.strip() for v in value.split(",") if v.strip()]


class Signer:
    def __init__(self, args):
        self.ca_cert = args.ca_cert
        self.ca_key = args.ca_key
        self.issuing_pem = read_pem_certs(args.ca_cert)[0]
        self.parents = []
        for p in args.parent or []:
            self.parents.extend(read_pem_certs(p))
        self.default_ttl = 3600

    def run(self, argv, stdin=None):
        p = subprocess.run(argv, input=stdin, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise SignError(400, "openssl failed: " + p.stderr.decode(errors="replace")[:200])
        return p.stdout

    def sign(self, csr_pem, cn, dns, ips, ttl_secs, ca_leaf=False):
        with tempfile.TemporaryDirectory() as d:
            csr_path = os.path.join(d, "req.csr")
            with open(csr_path, "w") as f:
                f.write(csr_pem)
            try:
                self.run([OPENSSL, "req", "-in", csr_path, "-noout", "-verify"])
            except SignError:
                raise SignError(400, "certificate request could not be parsed")
            ext = ["[v3]"]
            if ca_leaf:
                ext.append("basicConstraints=critical,CA:TRUE")
                ext.append("keyUsage=critical,keyCertSign,cRLSign")
            else:
                ext.append("basicConstraints=critical,CA:FALSE")
                ext.append("keyUsage=critical,digitalSignature,keyEncipherment")
                ext.append("extendedKeyUsage=serverAuth,clientAuth")
            ext.append("subjectKeyIdentifier=hash")
            ext.append("authorityKeyIdentifier=keyid")
            sans = ["DNS:" + n for n in dns] + ["IP:" + i for i in ips]
            if cn and cn not in dns and "." in cn:
                sans.insert(0, "DNS:" + cn)
            if sans:
                ext.append("subjectAltName=" + ",".join(sans))
            ext_path = os.path.join(d, "ext.cnf")
            with open(ext_path, "w") as f:
                f.write("\n".join(ext) + "\n")
            days = 0 if ttl_secs == 0 else max(1, math.ceil(ttl_secs / 86400))
            argv = [OPENSSL, "x509", "-req", "-in", csr_path, "-CA", self.ca_cert,
                    "-CAkey", self.ca_key, "-set_serial", "0x" + secrets.token_hex(16),
                    "-days", str(days), "-extfile", ext_path, "-extensions", "v3"]
            if cn:
                argv += ["-subj", "/CN=" + cn.replace("/", "\\/")]
            cert = self.run(argv).decode()
            serial = self.run([OPENSSL, "x509", "-noout", "-serial"], cert.encode()).decode()
            serial = serial.strip().split("=", 1)[1]
            serial = ":".join(serial[i:i + 2] for i in range(0, len(serial), 2)).lower()
            return cert, serial, int(time.time()) + days * 86400

    def other_key_csr(self):
        with tempfile.TemporaryDirectory() as d:
            key = os.path.join(d, "k.pem")
            return self.run([OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                             "-subj", "/CN=someone-else"]).decode()


def is_self_signed(pem):
    p = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253"],
                       input=pem.encode(), capture_output=True, timeout=30)
    lines = p.stdout.decode().splitlines()
    subj = lines[0].split("=", 1)[1] if lines else ""
    iss = lines[1].split("=", 1)[1] if len(lines) > 1 else ""
    return subj == iss


class Handler(BaseHTTPRequestHandler):
    server_version = "vault-fake"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("vault_fake: " + (fmt % args) + "\n")

    def reply(self, status, obj=None, raw=None):
        body = raw if raw is not None else (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        self.reply(405, {"errors": []})

    do_PUT = do_GET
    do_DELETE = do_GET

    def do_POST(self):
        cfg = self.server.cfg
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            return self.reply(413, {"errors": ["request body too large"]})
        raw = self.rfile.read(length)
        # Vault: authentication comes before routing to the backend.
        token = self.headers.get("X-Vault-Token")
        if token is None or not secrets.compare_digest(token, cfg.token):
            return self.reply(403, {"errors": ["permission denied"]})
        prefix = "/v1/%s/sign/" % cfg.mount
        if not self.path.startswith(prefix):
            route = self.path[len("/v1/"):] if self.path.startswith("/v1/") else self.path
            return self.reply(404, {"errors": [
                "no handler for route \"%s\". route entry not found." % route]})
        role = self.path[len(prefix):]
        if role not in BEHAVIOURS:
            return self.reply(400, {"errors": ["unknown role: " + role]})
        try:
            req = json.loads(raw.decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            return self.reply(400, {"errors": ["error parsing JSON"]})
        try:
            self.sign(role, req)
        except SignError as e:
            self.reply(e.status, {"errors": [e.message]})

    def sign(self, role, req):
        cfg = self.server.cfg
        signer = self.server.signer
        if role == "sealed":
            return self.reply(503, {"errors": ["Vault is sealed"]})
        if role == "html502":
            return self.reply(502, raw=b"<html><body>502 Bad Gateway</body></html>\n")
        if role == "slow":
            time.sleep(cfg.slow_secs)
        csr = req.get("csr")
        if not isinstance(csr, str) or not csr:
            raise SignError(400, "\"csr\" is empty")
        fmt = req.get("format", "pem")
        if fmt not in ("pem", "der", "pem_bundle"):
            raise SignError(400, "unknown format for \"format\": %s" % fmt)
        if fmt != "pem":
            raise SignError(400, "the fake only speaks format=pem")
        cn = req.get("common_name")
        if cn is not None and not isinstance(cn, str):
            raise SignError(400, "error converting input for field \"common_name\"")
        dns = split_list(req.get("alt_names"), "alt_names")
        ips = split_list(req.get("ip_sans"), "ip_sans")
        for ip in ips:
            try:
                import ipaddress
                ipaddress.ip_address(ip)
            except ValueError:
                raise SignError(400, "the value \"%s\" is not a valid IP address" % ip)
        ttl = parse_ttl(req["ttl"]) if "ttl" in req else signer.default_ttl
        remove_roots = req.get("remove_roots_from_chain", False) is True

        if role == "otherkey":
            csr = signer.other_key_csr()
        cert, serial, expiration = signer.sign(
            csr, cn, dns, ips, 0 if role == "expired" else ttl, ca_leaf=(role == "cacert"))
        if role == "expired":
            time.sleep(1.1)  # notAfter == now: make it strictly past

        chain = [signer.issuing_pem] + signer.parents
        if remove_roots and role != "keeproot":
            chain = [c for c in chain if not is_self_signed(c)]
        if role == "badchain":
            chain = signer.parents[-1:]  # the root alone: it did not sign the leaf
        if role == "truncpem":
            cert = cert[: len(cert) // 2]
        if role == "badpem":
            cert = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
        data = {
            "certificate": cert.strip(),
            "issuing_ca": signer.issuing_pem.strip(),
            "ca_chain": [c.strip() for c in chain],
            "serial_number": serial,
            "expiration": expiration,
        }
        if role == "textcert":
            data["certificate"] = 42
        if role == "bundle":
            data["certificate"] = cert.strip() + "\n" + signer.issuing_pem.strip()
            data["ca_chain"] = []
        resp = {
            "request_id": str(uuid.uuid4()),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": data,
            "wrap_info": None,
            "warnings": None,
            "auth": None,
        }
        if role == "nodata":
            del resp["data"]
        if role == "garbage":
            return self.reply(200, raw=b"<html>this is not json</html>\n")
        body = (json.dumps(resp) + "\n").encode()
        if role == "truncjson":
            return self.reply(200, raw=body[: len(body) // 2])
        if role == "hugestream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                self.wfile.write(b'{"data":{"certificate":"')
                for _ in range(64):
                    self.wfile.write(b"A" * 32768)
                self.wfile.write(b'"}}')
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if role == "huge":
            resp["warnings"] = [base64.b64encode(os.urandom(1536 * 1024)).decode()]
            body = json.dumps(resp).encode()
        self.reply(200, raw=body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--parent", action="append", help="PEM of a CA above --ca-cert")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--mount", default="pki")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--slow-secs", type=float, default=5.0)
    args = ap.parse_args()

    args.token = open(args.token_file).read().strip()
    srv = ThreadingHTTPServer((args.address, args.port), Handler)
    srv.daemon_threads = True
    srv.cfg = args
    srv.signer = Signer(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
