#!/usr/bin/python3
"""sigil-csi driven by an independent CSI client: Python grpcio with message
classes generated from proto/csi.proto by the reference protoc.  Proves wire
compatibility (service paths, field numbers) with another gRPC and protobuf
implementation, and checks the CSI spec's error codes."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

BUILD = os.environ["SIGIL_BUILD_DIR"]
SOURCE = os.environ["SIGIL_SOURCE_DIR"]
FAILURES = []
PASSES = [0]


def check(cond, what):
    if cond:
        PASSES[0] += 1
        print("ok   -", what)
    else:
        FAILURES.append(what)
        print("FAIL -", what)


def gen_pb2(tmp):
    out = os.path.join(tmp, "py")
    os.makedirs(out)
    subprocess.run(["protoc", "-I" + os.path.join(SOURCE, "proto"), "-I/usr/include",
                    "--python_out=" + out, os.path.join(SOURCE, "proto", "csi.proto")], check=True)
    sys.path.insert(0, out)
    import csi_pb2  # noqa: E402
    return csi_pb2


def main():
    tmp = tempfile.mkdtemp(prefix="sigil-grpcio-")
    proc = None
    try:
        pb = gen_pb2(tmp)
        sock = os.path.join(tmp, "csi.sock")
        log = open(os.path.join(tmp, "csi.log"), "w")
        proc = subprocess.Popen([os.path.join(BUILD, "sigil-csi"), "--endpoint", "unix://" + sock,
                                 "--node-id", "node-py", "--state-dir", os.path.join(tmp, "state"),
                                 "--key-pool", "rsa-2048=0"], stdout=log, stderr=log)
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        ch = grpc.insecure_channel("unix:" + sock)
        grpc.channel_ready_future(ch).result(timeout=10)

        def rpc(service, method, req, resp_cls):
            f = ch.unary_unary("/csi.v1.%s/%s" % (service, method),
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=resp_cls.FromString)
            return f(req, timeout=30)

        def code_of(service, method, req, resp_cls):
            try:
                rpc(service, method, req, resp_cls)
                return grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                return e.code(), e.details()

        info = rpc("Identity", "GetPluginInfo", pb.GetPluginInfoRequest(), pb.GetPluginInfoResponse)
        check(info.name == "secrets.sigil.dev", "GetPluginInfo name")
        caps = rpc("Identity", "GetPluginCapabilities", pb.GetPluginCapabilitiesRequest(),
                   pb.GetPluginCapabilitiesResponse)
        types = {c.service.type for c in caps.capabilities}
        check(pb.PluginCapability.Service.CONTROLLER_SERVICE in types, "CONTROLLER_SERVICE capability")
        check(pb.PluginCapability.Service.VOLUME_ACCESSIBILITY_CONSTRAINTS in types,
              "VOLUME_ACCESSIBILITY_CONSTRAINTS capability")
        probe = rpc("Identity", "Probe", pb.ProbeRequest(), pb.ProbeResponse)
        check(probe.HasField("ready") and probe.ready.value, "Probe ready")
        ni = rpc("Node", "NodeGetInfo", pb.NodeGetInfoRequest(), pb.NodeGetInfoResponse)
        check(ni.node_id == "node-py", "NodeGetInfo node id")
        check(dict(ni.accessible_topology.segments).get("secrets.sigil.dev/node") == "node-py",
              "NodeGetInfo topology")

        mount_cap = pb.VolumeCapability(
            mount=pb.VolumeCapability.MountVolume(),
            access_mode=pb.VolumeCapability.AccessMode(
                mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
        block_cap = pb.VolumeCapability(
            block=pb.VolumeCapability.BlockVolume(),
            access_mode=pb.VolumeCapability.AccessMode(
                mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))

        # Controller: CreateVolume copies parameters into the volume context.
        cv = rpc("Controller", "CreateVolume",
                 pb.CreateVolumeRequest(name="pvc-123", volume_capabilities=[mount_cap],
                                        parameters={"secrets.sigil.dev/class": "tls",
                                                    "secrets.sigil.dev/scope": "node"}),
                 pb.CreateVolumeResponse)
        check(cv.volume.volume_id.startswith("sigil-"), "CreateVolume returns a volume id")
        check(cv.volume.volume_context["secrets.sigil.dev/class"] == "tls",
              "CreateVolume copies parameters into the volume context")
        cv2 = rpc("Controller", "CreateVolume",
                  pb.CreateVolumeRequest(name="pvc-123", volume_capabilities=[mount_cap]),
                  pb.CreateVolumeResponse)
        check(cv2.volume.volume_id == cv.volume.volume_id, "CreateVolume is idempotent by name")
        c, _ = code_of("Controller", "CreateVolume", pb.CreateVolumeRequest(volume_capabilities=[mount_cap]),
                       pb.CreateVolumeResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "CreateVolume without name: INVALID_ARGUMENT")
        c, _ = code_of("Controller", "CreateVolume", pb.CreateVolumeRequest(name="x"), pb.CreateVolumeResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "CreateVolume without capabilities: INVALID_ARGUMENT")
        c, _ = code_of("Controller", "DeleteVolume", pb.DeleteVolumeRequest(volume_id="nope"),
                       pb.DeleteVolumeResponse)
        check(c == grpc.StatusCode.OK, "DeleteVolume of an unknown volume succeeds")
        c, _ = code_of("Controller", "DeleteVolume", pb.DeleteVolumeRequest(), pb.DeleteVolumeResponse)
        check(c == grpc.StatusCode.INVALID_ARGUMENT, "DeleteVolume without id: INVALID_ARGUMENT")
        c, _ = code_of("Controller", "ControllerPublishVolume", pb.ControllerPublishVolumeRequest(),
                       pb.ControllerPublishVolumeResponse)
        check(c == grpc.StatusCode.UNIMPLEMENTED, "ControllerPublishVolume: UNIMPLEMENTED")
        cc = rpc("Controller", "ControllerGetCapabilities", pb.ControllerGetCapabilitiesRequest(),
                 pb.ControllerGetCapabilitiesResponse)
        check(any(x.rpc.type == pb.ControllerServiceCapability.RPC.CREATE_DELETE_VOLUME
                  for x in cc.capabilities), "ControllerGetCapabilities: CREATE_DELETE_VOLUME")

        # Node: publish a volume from the created context, as the kubelet would.
        target = os.path.join(tmp, "pods", "p1", "mount")
        os.makedirs(os.path.dirname(target))
        ctx = dict(cv.volume.volume_context)
        ctx.update({"csi.storage.k8s.io/pod.name": "py-0", "csi.storage.k8s.io/pod.namespace": "ns1"})
        req = pb.NodePublishVolumeRequest(volume_id=cv.volume.volume_id, target_path=target,
                                          volume_capability=mount_cap, volume_context=ctx)
        c, d = code_of("Node", "NodePublishVolume", req, pb.NodePublishVolumeResponse)
        check(c == grpc.StatusCode.OK, "NodePublishVolume OK (%s)" % d)
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(target, "ca.crt"),
                            os.path.join(target, "tls.crt")], capture_output=True, text=True)
        check(v.returncode == 0, "published certificate verifies")
        c, _ = code_of("Node", "NodePublishVolume", req, pb.NodePublishVolumeResponse)
        check(c == grpc.StatusCode.OK, "identical NodePublishVolume again: OK")
        req_ro = pb.NodePublishVolumeRequest()
        req_ro.CopyFrom(req)
        req_ro.readonly = True
        c, _ = code_of("Node", "NodePublishVolume", req_ro, pb.NodePublishVolumeResponse)
        check(c == grpc.StatusCode.ALREADY_EXISTS, "incompatible NodePublishVolume: ALREADY_EXISTS")

        def bad(desc, **kw):
            r = pb.NodePublishVolumeRequest(**kw)
            c, d = code_of("Node", "NodePublishVolume", r, pb.NodePublishVolumeResponse)
            check(c == grpc.StatusCode.INVALID_ARGUMENT, "%s: INVALID_ARGUMENT (%s)" % (desc, d))

        t2 = os.path.join(tmp, "pods", "p2")
        bad("missing volume id", target_path=t2, volume_capability=mount_cap, volume_context=ctx)
        bad("missing target", volume_id="v2", volume_capability=mount_cap, volume_context=ctx)
        bad("missing capability", volume_id="v2", target_path=t2, volume_context=ctx)
        bad("block access", volume_id="v2", target_path=t2, volume_capability=block_cap, volume_context=ctx)
        bad("unknown attribute", volume_id="v2", target_path=t2, volume_capability=mount_cap,
            volume_context={"secrets.sigil.dev/class": "tls", "secrets.sigil.dev/nope": "1"})
        check(not os.path.exists(t2), "failed publishes leave nothing")

        c, _ = code_of("Node", "NodeUnpublishVolume",
                       pb.NodeUnpublishVolumeRequest(volume_id=cv.volume.volume_id, target_path=target),
                       pb.NodeUnpublishVolumeResponse)
        check(c == grpc.StatusCode.OK and not os.path.exists(target), "NodeUnpublishVolume removes the target")
        c, _ = code_of("Node", "NodeUnpublishVolume",
                       pb.NodeUnpublishVolumeRequest(volume_id=cv.volume.volume_id, target_path=target),
                       pb.NodeUnpublishVolumeResponse)
        check(c == grpc.StatusCode.OK, "NodeUnpublishVolume again: OK (idempotent)")
        c, _ = code_of("Node", "NodeStageVolume", pb.NodeStageVolumeRequest(), pb.NodeStageVolumeResponse)
        check(c == grpc.StatusCode.UNIMPLEMENTED, "NodeStageVolume: UNIMPLEMENTED")
        ch.close()
        proc.send_signal(signal.SIGTERM)
        check(proc.wait(timeout=20) == 0, "sigil-csi exits 0 on SIGTERM")
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
