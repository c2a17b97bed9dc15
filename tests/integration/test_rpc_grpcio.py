#!/usr/bin/python3
"""Interop: Debian's python3-grpcio as an independent client of the rpc layer.

Starts tests/tools/rpc_echo_server (csi.v1.Identity over a unix socket) and
checks, with generic grpc calls and hand-encoded protobuf bytes:
GetPluginInfo / GetPluginCapabilities / Probe answers, UNIMPLEMENTED for
unknown methods (quickly, not at the deadline), INVALID_ARGUMENT for
garbage, concurrent calls, socket mode 0600, refusal of a live socket,
replacement of a stale one, and exit status 0 on SIGTERM.  When
python3-protobuf is installed, the responses are also decoded with classes
generated from proto/csi.proto by protoc, which checks the field numbers
against the reference protobuf implementation.
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

BUILD = os.environ.get("SIGIL_BUILD_DIR")
SOURCE = os.environ.get("SIGIL_SOURCE_DIR")
if not BUILD or not SOURCE:
    here = os.path.dirname(os.path.abspath(__file__))
    SOURCE = SOURCE or os.path.normpath(os.path.join(here, "..", ".."))
    BUILD = BUILD or os.path.join(SOURCE, "build")
SERVER = os.path.join(BUILD, "tests", "rpc_echo_server")

FAILURES = []


def check(cond, what):
    if cond:
        print("ok   -", what)
    else:
        print("FAIL -", what)
        FAILURES.append(what)


# ---- minimal protobuf wire decoding (no python3-protobuf needed) ----------

def read_varint(buf, pos):
    shift = result = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def decode_fields(buf):
    """Returns [(field_number, wire_type, value)] of one message level."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = read_varint(buf, pos)
        elif wt == 2:
            ln, pos = read_varint(buf, pos)
            if pos + ln > len(buf):
                raise ValueError("truncated field")
            val, pos = buf[pos:pos + ln], pos + ln
        else:
            raise ValueError("unexpected wire type %d" % wt)
        out.append((num, wt, val))
    return out


# ---- server process handling ---------------------------------------------

class Server:
    def __init__(self, sock, name=None):
        args = [SERVER, "--endpoint", "unix:" + sock, "--workers", "3"]
        if name:
            args += ["--name", name]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def wait_ready(self, timeout=15):
        line = b""
        deadline = time.monotonic() + timeout
        # readline blocks; the server prints "ready" or exits.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line or self.proc.poll() is not None:
                break
        return line.strip() == b"ready"

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stderr(self):
        return self.proc.stderr.read().decode(errors="replace")


def unary(channel, method):
    # Raw bytes in and out: no serializer on either side.
    return channel.unary_unary(method, request_serializer=None,
                               response_deserializer=None)


def load_csi_pb2(tmp):
    """Compiles proto/csi.proto for python if python3-protobuf is present."""
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        print("note - python3-protobuf not installed: hand decoding only")
        return None
    protoc = shutil.which("protoc")
    if not protoc:
        print("note - protoc not installed: hand decoding only")
        return None
    out = os.path.join(tmp, "py")
    os.mkdir(out)
    includes = ["-I" + os.path.join(SOURCE, "proto")]
    if os.path.exists("/usr/include/google/protobuf/wrappers.proto"):
        includes.append("-I/usr/include")
    subprocess.run([protoc, "--python_out=" + out] + includes +
                   [os.path.join(SOURCE, "proto", "csi.proto")], check=True)
    sys.path.insert(0, out)
    import csi_pb2
    return csi_pb2


def main():
    tmp = tempfile.mkdtemp(prefix="sigil-grpcio-")
    servers = []
    try:
        sock = os.path.join(tmp, "csi.sock")
        srv = Server(sock)
        servers.append(srv)
        check(srv.wait_ready(), "server reports ready")
        st = os.lstat(sock)
        check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
              "socket is mode 0600 (got %o)" % stat.S_IMODE(st.st_mode))

        csi_pb2 = load_csi_pb2(tmp)
        ch = grpc.insecure_channel("unix:" + sock)

        # GetPluginInfo with an empty request (proto3: zero bytes).
        resp = unary(ch, "/csi.v1.Identity/GetPluginInfo")(b"", timeout=10)
        fields = decode_fields(resp)
        names = [v for n, wt, v in fields if n == 1 and wt == 2]
        check(names == [b"test.sigil.dev"], "GetPluginInfo.name (field 1)")
        versions = [v for n, wt, v in fields if n == 2 and wt == 2]
        check(versions == [b"0.1.0-test"], "GetPluginInfo.vendor_version (field 2)")
        entries = [decode_fields(v) for n, wt, v in fields if n == 3]
        check(entries == [[(1, 2, b"implementation"), (2, 2, b"sigil-rpc-test")]],
              "GetPluginInfo.manifest map entry (field 3)")
        if csi_pb2:
            m = csi_pb2.GetPluginInfoResponse.FromString(resp)
            check(m.name == "test.sigil.dev" and
                  dict(m.manifest) == {"implementation": "sigil-rpc-test"},
                  "GetPluginInfo decodes with protoc-generated classes")
            req = csi_pb2.GetPluginInfoRequest().SerializeToString()
            again = unary(ch, "/csi.v1.Identity/GetPluginInfo")(req, timeout=10)
            check(again == resp, "GetPluginInfo with a protobuf-encoded request")

        # Probe: ready = BoolValue{value: true} at field 1.
        resp = unary(ch, "/csi.v1.Identity/Probe")(b"", timeout=10)
        check(resp == b"\x0a\x02\x08\x01", "Probe.ready = BoolValue(true) bytes")
        if csi_pb2:
            m = csi_pb2.ProbeResponse.FromString(resp)
            check(m.HasField("ready") and m.ready.value, "Probe decodes: ready")

        resp = unary(ch, "/csi.v1.Identity/GetPluginCapabilities")(b"", timeout=10)
        check(resp == b"\x0a\x04\x0a\x02\x08\x01",
              "GetPluginCapabilities: service CONTROLLER_SERVICE bytes")
        if csi_pb2:
            m = csi_pb2.GetPluginCapabilitiesResponse.FromString(resp)
            check(len(m.capabilities) == 1 and
                  m.capabilities[0].service.type ==
                  csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE,
                  "GetPluginCapabilities decodes")

        # Unknown methods and services: UNIMPLEMENTED, right away.
        for method in ("/csi.v1.Node/NodeFrobnicateVolume", "/no.Such/Service",
                       "/csi.v1.Identity/getplugininfo"):
            t0 = time.monotonic()
            code = None
            try:
                unary(ch, method)(b"", timeout=10)
            except grpc.RpcError as e:
                code = e.code()
            dt = time.monotonic() - t0
            check(code == grpc.StatusCode.UNIMPLEMENTED and dt < 3,
                  "%s -> UNIMPLEMENTED in %.2fs (got %s)" % (method, dt, code))

        # Garbage in a request: the handler refuses it.
        code = None
        try:
            unary(ch, "/csi.v1.Identity/GetPluginInfo")(b"\xff\xff\xff", timeout=10)
        except grpc.RpcError as e:
            code = e.code()
        check(code == grpc.StatusCode.INVALID_ARGUMENT,
              "garbage request -> INVALID_ARGUMENT (got %s)" % code)

        # Oversized request (server default limit 4 MiB).
        code = None
        try:
            unary(ch, "/csi.v1.Identity/GetPluginInfo")(b"\x00" * (5 << 20),
                                                         timeout=20)
        except grpc.RpcError as e:
            code = e.code()
        check(code == grpc.StatusCode.RESOURCE_EXHAUSTED,
              "5 MiB request -> RESOURCE_EXHAUSTED (got %s)" % code)

        # Concurrent calls.
        call = unary(ch, "/csi.v1.Identity/GetPluginInfo")
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: call(b"", timeout=10), range(64)))
        check(all(decode_fields(r)[0][2] == b"test.sigil.dev" for r in results),
              "64 concurrent calls answered")
        ch.close()

        # A second server on the live socket must refuse, not steal it.
        dup = Server(sock, name="intruder")
        servers.append(dup)
        rc = dup.proc.wait(timeout=15)
        err = dup.stderr()
        check(rc not in (0, None) and "another process is serving" in err,
              "second server refuses the live socket (rc=%s)" % rc)
        ch = grpc.insecure_channel("unix:" + sock)
        resp = unary(ch, "/csi.v1.Identity/GetPluginInfo")(b"", timeout=10)
        check(decode_fields(resp)[0][2] == b"test.sigil.dev",
              "first server still serves its socket")
        ch.close()

        # SIGTERM: graceful exit with status 0, socket removed.
        rc = srv.stop(signal.SIGTERM)
        check(rc == 0, "SIGTERM -> exit status 0 (got %s)" % rc)
        check(not os.path.exists(sock), "socket removed on exit")

        # A stale socket (server killed hard) is replaced by the next one.
        srv2 = Server(sock)
        servers.append(srv2)
        check(srv2.wait_ready(), "second server ready")
        srv2.stop(signal.SIGKILL)
        check(os.path.exists(sock), "SIGKILL leaves a stale socket behind")
        srv3 = Server(sock, name="after.stale")
        servers.append(srv3)
        check(srv3.wait_ready(), "server starts over a stale socket")
        ch = grpc.insecure_channel("unix:" + sock)
        resp = unary(ch, "/csi.v1.Identity/GetPluginInfo")(b"", timeout=10)
        check(decode_fields(resp)[0][2] == b"after.stale", "new server answers")
        ch.close()
        rc = srv3.stop(signal.SIGINT)
        check(rc == 0, "SIGINT -> exit status 0 (got %s)" % rc)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
