#!/usr/bin/python3
"""A fake kube-apiserver for sigil's tests (stdlib only).

It speaks the real REST paths, JSON shapes, status codes and semantics that
sigil depends on, so that the Kubernetes client can be tested without a
cluster:

- HTTPS only, bearer-token authentication (tokens given on the command line
  or replaced at run time) and optionally client-certificate authentication
  (CN = user name, as the real apiserver does with --client-ca-file).
- In-memory objects with a global resourceVersion (an etcd revision), uid,
  creationTimestamp, generation (CRDs), generateName, namespaces that must
  exist, finalizers, the status subresource.
- GET, LIST (labelSelector, fieldSelector, limit + continue served from a
  consistent snapshot, 410 Expired once that snapshot has been compacted),
  WATCH (chunked JSON lines, resume from a resourceVersion, ADDED/MODIFIED/
  DELETED including selector transitions, BOOKMARK at the end of
  timeoutSeconds, ERROR 410 Expired for a compacted resourceVersion), create,
  update (409 Conflict on a stale resourceVersion), JSON merge patch
  (RFC 7386), delete with preconditions.
- pods/eviction honouring PodDisruptionBudgets (429 with the DisruptionBudget
  cause), TokenReview, Status objects for every error.
- Test control under /_fake/ (never under /api or /apis): inject 429/5xx
  answers and latency, inspect the requests the client sent, seed objects,
  replace tokens, forbid verbs (403), compact history, close watches.

Control endpoints (JSON bodies):
  POST /_fake/inject        {"status": 429|410|500|503|504, "retryAfter": s,
                             "latencyMs": ms, "count": n, "method": "GET",
                             "path": regex, "query": substring, "watch": bool}
                            (a list of rules is accepted too); DELETE clears
  GET|DELETE /_fake/requests  what clients sent: method, path, query,
                             authorization, contentType, userAgent, body,
                             user, status, injected
  POST /_fake/seed          {"items": [objects], "tokenReviews": {token: user},
                             "tokens": {token: user}, "resourceVersion": N}
  POST /_fake/tokens        {"tokens": {token: user}} replaces the API tokens
  POST /_fake/forbid        [{"user", "verb", "resource", "namespace"}] -> 403
  POST /_fake/compact       forget history: older versions answer 410
  POST /_fake/close-watches {"abrupt": bool} ends every open watch
  GET  /_fake/state         resourceVersion, compaction point, open watches
  GET  /_fake/objects       every stored object

It does not model: RBAC beyond explicit /_fake/forbid rules, admission,
defaulting and validation of object schemas (only names, kinds, namespaces
and Secret data are checked), strategic merge / JSON patch / server-side
apply (415), protobuf, resourceVersionMatch, field selector whitelists (any
dotted path is accepted), PDB matchExpressions, graceful pod deletion (pods
go at once unless they have finalizers), garbage collection, discovery
beyond /version, /api and /apis.
"""

import argparse
import base64
import copy
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Real apiserver limits.
MAX_REQUEST_BODY = 3 * 1024 * 1024  # --max-request-bytes default
MAX_LOG = 20000                     # watch history kept before auto-compaction
MAX_REQUEST_LOG = 10000

# (group, versions, plural, kind, namespaced, builtin, status subresource)
RESOURCES = [
    ("", ["v1"], "pods", "Pod", True, True, True),
    ("", ["v1"], "nodes", "Node", False, True, True),
    ("", ["v1"], "namespaces", "Namespace", False, True, True),
    ("", ["v1"], "persistentvolumeclaims", "PersistentVolumeClaim", True, True, True),
    ("", ["v1"], "secrets", "Secret", True, True, False),
    ("", ["v1"], "configmaps", "ConfigMap", True, True, False),
    ("", ["v1"], "events", "Event", True, True, False),
    ("coordination.k8s.io", ["v1"], "leases", "Lease", True, True, False),
    ("policy", ["v1"], "poddisruptionbudgets", "PodDisruptionBudget", True, True, True),
    ("authentication.k8s.io", ["v1"], "tokenreviews", "TokenReview", False, True, False),
    ("secrets.sigil.dev", ["v1alpha1"], "secretclasses", "SecretClass", False, False, False),
    ("secrets.sigil.dev", ["v1alpha1"], "truststores", "TrustStore", True, False, False),
    ("secrets.stackable.tech", ["v1alpha1", "v1alpha2"], "secretclasses", "SecretClass",
     False, False, False),
    ("secrets.stackable.tech", ["v1alpha1"], "truststores", "TrustStore", True, False, False),
    # helper A (issue 6): Stackable listener-operator's Listener (listener-volume scopes).
    ("listeners.stackable.tech", ["v1alpha1"], "listeners", "Listener", True, False, True),
]


class Resource:
    def __init__(self, group, versions, plural, kind, namespaced, builtin, status_sub):
        self.group = group
        self.versions = versions
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.builtin = builtin
        self.status_sub = status_sub

    @property
    def key(self):
        return (self.group, self.plural)

    def api_version(self, version):
        return version if not self.group else self.group + "/" + version

    def qualified(self):
        """How the apiserver names the resource in messages: pods, secretclasses.secrets.sigil.dev."""
        return self.plural if not self.group else self.plural + "." + self.group


RES_BY_PATH = {}  # (group, version, plural) -> Resource
RES_BY_KIND = {}  # (apiVersion, kind) -> (Resource, version)
for _r in RESOURCES:
    _res = Resource(*_r)
    for _v in _res.versions:
        RES_BY_PATH[(_res.group, _v, _res.plural)] = _res
        RES_BY_KIND[(_res.api_version(_v), _res.kind)] = (_res, _v)

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ApiError(Exception):
    """An error answered as a metav1.Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            st["details"] = self.details
        return st


def not_found(res, name):
    d = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified(), name), d)


def conflict(res, name, why="the object has been modified; please apply your changes to the "
                            "latest version and try again"):
    d = {"name": name, "kind": res.plural}
    if res.group:
        d["group"] = res.group
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (res.qualified(), name, why), d)


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def invalid(res, kind, name, causes):
    msg = '%s "%s" is invalid: %s' % (kind, name, ", ".join(
        "%s: %s" % (c["field"], c["message"]) for c in causes))
    d = {"name": name, "kind": kind, "causes": [
        {"reason": "FieldValueInvalid", "message": c["message"], "field": c["field"]} for c in causes]}
    if res.group:
        d["group"] = res.group
    return ApiError(422, "Invalid", msg, d)


def merge_patch(target, patch):
    """RFC 7386 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# ---- selectors ----------------------------------------------------------------

def split_top(s):
    """Splits on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(sel):
    """Returns a predicate over a labels dict, or raises ApiError 400."""
    reqs = []
    for term in split_top(sel or ""):
        m = re.match(r"^([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)$", term)
        if m:
            vals = {v.strip() for v in m.group(3).split(",") if v.strip()}
            reqs.append((m.group(2), m.group(1), vals))
            continue
        m = re.match(r"^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$", term)
        if m:
            reqs.append(("!=" if m.group(2) == "!=" else "=", m.group(1), m.group(3)))
            continue
        m = re.match(r"^(!?)([A-Za-z0-9._/-]+)$", term)
        if m:
            reqs.append(("!exists" if m.group(1) else "exists", m.group(2), None))
            continue
        raise bad_request('unable to parse requirement: invalid label selector "%s"' % sel)

    def pred(labels):
        labels = labels or {}
        for op, k, v in reqs:
            if op == "=" and labels.get(k) != v:
                return False
            if op == "!=" and labels.get(k) == v:
                return False
            if op == "in" and labels.get(k) not in v:
                return False
            if op == "notin" and k in labels and labels[k] in v:
                return False
            if op == "exists" and k not in labels:
                return False
            if op == "!exists" and k in labels:
                return False
        return True
    return pred


def dotted(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    return cur if isinstance(cur, str) else json.dumps(cur)


def parse_field_selector(sel):
    reqs = []
    for term in split_top(sel or ""):
        m = re.match(r"^([A-Za-z0-9.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not m:
            raise bad_request('invalid field selector: "%s"' % sel)
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))

    def pred(obj):
        for path, eq, v in reqs:
            if (dotted(obj, path) == v) != eq:
                return False
        return True
    return pred


# ---- the store ------------------------------------------------------------------

class Store:
    """All objects, a global resourceVersion and the change log watches read."""

    def __init__(self):
        self.lock = threading.Condition()
        self.rv = 1000
        self.compacted_rv = 1000
        self.objects = {}   # (group, plural) -> {(ns, name): obj}
        self.log = []       # [(rv, reskey, objkey, type, obj, prev)]
        self.watch_gen = 0
        self.watch_abrupt = False
        self.active_watches = 0
        with self.lock:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self._put_new(RES_BY_PATH[("", "v1", "namespaces")],
                              {"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                               "status": {"phase": "Active"}}, keep_meta=False)

    def bucket(self, res):
        return self.objects.setdefault(res.key, {})

    def next_rv(self):
        self.rv += 1
        return self.rv

    def record(self, res, key, typ, obj, prev):
        self.log.append((int(obj["metadata"]["resourceVersion"]), res.key, key, typ,
                         copy.deepcopy(obj), copy.deepcopy(prev)))
        if len(self.log) > MAX_LOG:
            drop = self.log[: len(self.log) - MAX_LOG]
            self.log = self.log[len(self.log) - MAX_LOG:]
            self.compacted_rv = drop[-1][0]
        self.lock.notify_all()

    def _put_new(self, res, obj, keep_meta):
        md = obj.setdefault("metadata", {})
        if not keep_meta or "uid" not in md:
            md["uid"] = str(uuid.uuid4())
        if not keep_meta or "creationTimestamp" not in md:
            md["creationTimestamp"] = now_rfc3339()
        if not res.builtin or res.kind == "PodDisruptionBudget":
            md.setdefault("generation", 1)
        md["resourceVersion"] = str(self.next_rv())
        key = (md.get("namespace", "") if res.namespaced else "", md["name"])
        self.bucket(res)[key] = obj
        self.record(res, key, "ADDED", obj, None)
        return obj

    def compact(self):
        with self.lock:
            self.compacted_rv = self.rv
            self.log = []

    def snapshot(self, res, at_rv):
        """The objects of res as they were at resourceVersion at_rv."""
        if at_rv < self.compacted_rv:
            return None
        state = dict(self.bucket(res))
        for rv, rkey, okey, _typ, _obj, prev in reversed(self.log):
            if rv <= at_rv:
                break
            if rkey != res.key:
                continue
            if prev is None:
                state.pop(okey, None)
            else:
                state[okey] = prev
        return state


def output(res, version, obj, in_list=False):
    """An object as the apiserver serialises it for a given version."""
    o = {}
    if not (in_list and res.builtin):
        # Typed lists carry kind/apiVersion on the List only; CRD lists
        # (unstructured) keep them on every item.
        o["kind"] = res.kind
        o["apiVersion"] = res.api_version(version)
    for k, v in obj.items():
        if k not in ("kind", "apiVersion"):
            o[k] = copy.deepcopy(v)
    return o


# ---- the server -------------------------------------------------------------------

class Fake:
    def __init__(self, tokens, seed=None):
        self.store = Store()
        self.tokens = dict(tokens)           # bearer token -> user name
        self.review_tokens = {}              # token -> TokenReview status.user (+ audiences)
        self.inject = []                     # rules, see /_fake/inject
        self.forbid = []                     # [{"user","verb","resource","namespace"}]
        self.requests = []
        self.misc_lock = threading.Lock()
        if seed:
            self.seed(seed)

    # -- seeding -------------------------------------------------------------
    def seed(self, doc):
        items = doc.get("items", []) if isinstance(doc, dict) else doc
        with self.store.lock:
            # (sigil kube_classes test) "resourceVersion": N starts the
            # revision at N at least: an apiserver restarted on the same
            # etcd keeps counting, so clients may resume their watches.
            if isinstance(doc, dict) and isinstance(doc.get("resourceVersion"), int):
                self.store.rv = max(self.store.rv, doc["resourceVersion"])
            for obj in items:
                res, _v = self.res_for_object(obj)
                md = obj.get("metadata") or {}
                if not md.get("name"):
                    raise bad_request("seed object without metadata.name")
                obj = copy.deepcopy(obj)
                if res.namespaced:
                    md = obj["metadata"]
                    md.setdefault("namespace", "default")
                    self.ensure_namespace(md["namespace"])
                else:
                    obj["metadata"].pop("namespace", None)
                key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
                old = self.store.bucket(res).get(key)
                obj.pop("apiVersion", None)
                obj.pop("kind", None)
                if old is None:
                    self.store._put_new(res, obj, keep_meta=True)
                else:
                    self.store.bucket(res)[key] = obj
                    obj["metadata"]["uid"] = old["metadata"]["uid"]
                    obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
                    self.store.record(res, key, "MODIFIED", obj, old)
        if isinstance(doc, dict):
            for tok, user in (doc.get("tokenReviews") or {}).items():
                self.review_tokens[tok] = user
            for tok, user in (doc.get("tokens") or {}).items():
                self.tokens[tok] = user

    def ensure_namespace(self, ns):
        nsres = RES_BY_PATH[("", "v1", "namespaces")]
        if ("", ns) not in self.store.bucket(nsres):
            self.store._put_new(nsres, {"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                                        "status": {"phase": "Active"}}, keep_meta=False)

    @staticmethod
    def res_for_object(obj):
        if not isinstance(obj, dict):
            raise bad_request("object is not a JSON object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if not av or not kind:
            raise bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj)[:200])
        try:
            return RES_BY_KIND[(av, kind)]
        except KeyError:
            raise bad_request('no kind "%s" is registered for version "%s"' % (kind, av))

    # -- injection -------------------------------------------------------------
    def take_injection(self, method, path, query, raw_query):
        with self.misc_lock:
            for rule in self.inject:
                if rule.get("method") and rule["method"] != method:
                    continue
                if rule.get("path") and not re.search(rule["path"], path):
                    continue
                if rule.get("query") and rule["query"] not in raw_query:
                    continue
                if "watch" in rule and bool(rule["watch"]) != (query.get("watch") in ("1", "true")):
                    continue
                rule["count"] -= 1
                if rule["count"] <= 0:
                    self.inject.remove(rule)
                return dict(rule)
        return None

    def log_request(self, entry):
        with self.misc_lock:
            self.requests.append(entry)
            del self.requests[:-MAX_REQUEST_LOG]

    def authorize(self, user, verb, res, ns, name, sub=""):
        resname = res.plural + ("/" + sub if sub else "")
        for rule in self.forbid:
            if rule.get("user", user) != user or rule.get("verb", verb) != verb:
                continue
            if rule.get("resource", resname) != resname:
                continue
            if rule.get("namespace", ns) != ns:
                continue
            what = '%s "%s"' % (res.qualified(), name) if name else res.qualified()
            scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
            d = {"kind": res.plural}
            if name:
                d["name"] = name
            if res.group:
                d["group"] = res.group
            raise ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" '
                           'in API group "%s" %s' % (what, user, verb, resname, res.group, scope), d)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: " + (fmt % args) + "\n")

    @property
    def fake(self):
        return self.server.fake

    # -- plumbing ---------------------------------------------------------------
    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.status_sent = code

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiError(411, "BadRequest", "chunked request bodies are not supported by the fake")
        if n > MAX_REQUEST_BODY:
            # Drain so that the connection stays usable.
            left = n
            while left > 0:
                got = self.rfile.read(min(left, 65536))
                if not got:
                    break
                left -= len(got)
            raise ApiError(413, "RequestEntityTooLarge",
                           "Request entity too large: limit is %d" % MAX_REQUEST_BODY)
        return self.rfile.read(n) if n else b""

    def user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = auth[len("Bearer "):].strip()
            return self.fake.tokens.get(tok)
        cert = None
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        if cert:
            for rdn in cert.get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        return v
        return None

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.status_sent = 0
        if url.path.startswith("/_fake/"):
            try:
                self.control(method, url.path, query)
            except ApiError as e:
                self.send_json(e.code, e.status())
            except (ValueError, KeyError, TypeError) as e:
                self.send_json(400, {"error": str(e)})
            return
        entry = {"method": method, "path": url.path, "query": query,
                 "authorization": self.headers.get("Authorization"),
                 "contentType": self.headers.get("Content-Type"),
                 "userAgent": self.headers.get("User-Agent"),
                 "accept": self.headers.get("Accept"),
                 "time": time.monotonic(), "body": None, "user": None}
        try:
            body = b""
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                body = self.read_body()
                if body:
                    try:
                        entry["body"] = json.loads(body)
                    except ValueError:
                        entry["body"] = body.decode("utf-8", "replace")[:1000]
            user = self.user()
            entry["user"] = user
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            # Priority and fairness (429) and slowness come after authentication,
            # as in the real apiserver.
            rule = self.fake.take_injection(method, url.path, query, url.query)
            if rule:
                entry["injected"] = rule
                if rule.get("latencyMs"):
                    time.sleep(rule["latencyMs"] / 1000.0)
                if rule.get("status"):
                    raise self.injected_error(rule)
            self.route(method, url.path, query, body, user)
        except ApiError as e:
            try:
                self.send_json(e.code, e.status(), e.headers)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass
        entry["status"] = self.status_sent
        self.fake.log_request(entry)

    @staticmethod
    def injected_error(rule):
        code = int(rule["status"])
        headers = {}
        details = None
        if rule.get("retryAfter") is not None:
            headers["Retry-After"] = str(rule["retryAfter"])
            details = {"retryAfterSeconds": int(rule["retryAfter"])}
        if code == 429:
            return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                            details, headers)
        if code == 503:
            return ApiError(503, "ServiceUnavailable", "The server is currently unable to handle "
                            "the request", details, headers)
        if code == 410:
            return ApiError(410, "Expired", "The provided continue parameter is too old to display "
                            "a consistent list result (injected)", {})
        if code == 504:
            return ApiError(504, "Timeout", "The server was unable to return a response in the "
                            "time allotted, but may still be processing the request", details, headers)
        d = {"causes": [{"message": "injected failure"}]}
        if details:
            d.update(details)
        return ApiError(code, "InternalError", "Internal error occurred: injected failure", d, headers)

    # -- /_fake control ------------------------------------------------------------
    def control(self, method, path, query):
        fake = self.fake
        body = self.read_body() if method in ("POST", "PUT", "DELETE") else b""
        doc = json.loads(body) if body else {}
        if path == "/_fake/inject" and method == "POST":
            rules = doc if isinstance(doc, list) else [doc]
            with fake.misc_lock:
                for r in rules:
                    r = dict(r)
                    r.setdefault("count", 1)
                    fake.inject.append(r)
            return self.send_json(200, {"inject": fake.inject})
        if path == "/_fake/inject" and method == "DELETE":
            with fake.misc_lock:
                fake.inject = []
            return self.send_json(200, {})
        if path == "/_fake/requests" and method == "GET":
            with fake.misc_lock:
                return self.send_json(200, {"items": list(fake.requests)})
        if path == "/_fake/requests" and method == "DELETE":
            with fake.misc_lock:
                fake.requests = []
            return self.send_json(200, {})
        if path == "/_fake/seed" and method == "POST":
            fake.seed(doc)
            return self.send_json(200, {"resourceVersion": str(fake.store.rv)})
        if path == "/_fake/tokens" and method == "POST":
            # {"tokens": {token: user}}: replaces the accepted API tokens.
            fake.tokens = dict(doc.get("tokens", {}))
            return self.send_json(200, {})
        if path == "/_fake/forbid" and method == "POST":
            fake.forbid = doc if isinstance(doc, list) else [doc]
            return self.send_json(200, {})
        if path == "/_fake/compact" and method == "POST":
            fake.store.compact()
            return self.send_json(200, {"compactedResourceVersion": str(fake.store.compacted_rv)})
        if path == "/_fake/close-watches" and method == "POST":
            with fake.store.lock:
                fake.store.watch_gen += 1
                fake.store.watch_abrupt = bool(doc.get("abrupt"))
                fake.store.lock.notify_all()
            return self.send_json(200, {})
        if path == "/_fake/state" and method == "GET":
            with fake.store.lock:
                return self.send_json(200, {"resourceVersion": str(fake.store.rv),
                                            "compactedResourceVersion": str(fake.store.compacted_rv),
                                            "activeWatches": fake.store.active_watches})
        if path == "/_fake/objects" and method == "GET":
            with fake.store.lock:
                out = []
                for (g, p), bucket in fake.store.objects.items():
                    for obj in bucket.values():
                        o = copy.deepcopy(obj)
                        o["_resource"] = p + ("." + g if g else "")
                        out.append(o)
            return self.send_json(200, {"items": out})
        raise ApiError(404, "NotFound", "no such control endpoint %s %s" % (method, path))

    # -- Kubernetes API ------------------------------------------------------------
    def route(self, method, path, query, body, user):
        if path in ("/healthz", "/readyz", "/livez"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.status_sent = 200
            return
        if path == "/version" and method == "GET":
            return self.send_json(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake",
                                        "platform": "linux/amd64"})
        if path == "/api" and method == "GET":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": []})
        if path == "/apis" and method == "GET":
            groups = {}
            for r in RESOURCES:
                if r[0]:
                    groups.setdefault(r[0], set()).update(r[1])
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": g + "/" + v, "version": v}
                                         for v in sorted(vs)]} for g, vs in sorted(groups.items())]})
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        elif len(rest) == 2 and rest[0] == "namespaces" and group == "":
            # /api/v1/namespaces/NAME is the namespace object itself.
            rest = ["namespaces", rest[1]]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        res = RES_BY_PATH.get((group, version, rest[0]))
        if res is None or (ns and not res.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        if sub and not ((sub == "status" and res.status_sub) or
                        (sub == "eviction" and res.plural == "pods")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        watch = query.get("watch") in ("1", "true")
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
        if sub == "eviction":
            verb = "create"
        self.fake.authorize(user, verb, res, ns, name, sub)

        if res.plural == "tokenreviews":
            if method != "POST" or name:
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource", {})
            return self.token_review(res, version, body)
        if sub == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method "
                               "on the requested resource", {})
            return self.evict(res, ns, name, body)
        if method == "GET" and watch:
            return self.watch(res, version, ns, query)
        if method == "GET" and name:
            return self.get(res, version, ns, name)
        if method == "GET":
            return self.list(res, version, ns, query)
        if method == "POST" and not name:
            return self.create(res, version, ns, body)
        if method == "PUT" and name:
            return self.update(res, version, ns, name, sub, self.parse_body(body))
        if method == "PATCH" and name:
            return self.patch(res, version, ns, name, sub, body)
        if method == "DELETE" and name:
            return self.delete(res, version, ns, name, body)
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource", {})

    def parse_body(self, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json")
        try:
            obj = json.loads(body)
        except ValueError as e:
            raise bad_request("the request body is not valid JSON: %s" % e)
        if not isinstance(obj, dict):
            raise bad_request("the request body is not a JSON object")
        return obj

    def get(self, res, version, ns, name):
        with self.fake.store.lock:
            obj = self.fake.store.bucket(res).get((ns, name))
            if obj is None:
                raise not_found(res, name)
            return self.send_json(200, output(res, version, obj))

    def list(self, res, version, ns, query):
        store = self.fake.store
        lpred = parse_label_selector(query.get("labelSelector"))
        fpred = parse_field_selector(query.get("fieldSelector"))
        limit = 0
        if query.get("limit"):
            try:
                limit = int(query["limit"])
            except ValueError:
                raise bad_request("limit: Invalid value: %s" % query["limit"])
        with store.lock:
            start = ""
            if query.get("continue"):
                try:
                    tok = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))
                    at_rv, start = int(tok["rv"]), tok["start"]
                except (ValueError, KeyError, TypeError):
                    raise bad_request("continue key is not valid: illegal base64 data")
                state = store.snapshot(res, at_rv)
                if state is None:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to "
                                   "display a consistent list result. You can start a new list "
                                   "without the continue parameter, or use the continue value from "
                                   "the response to retrieve the remainder of the results. "
                                   "Continuing with the provided token results in an inconsistent "
                                   "list - objects that were created, modified, or deleted between "
                                   "the time the first chunk was returned and now may show up in "
                                   "the list.", {})
            else:
                at_rv, state = store.rv, dict(store.bucket(res))
            keys = sorted(k for k in state if (not ns or k[0] == ns))
            items, cont, remaining = [], None, 0
            for i, k in enumerate(keys):
                keystr = k[0] + "/" + k[1]
                if start and keystr <= start:
                    continue
                obj = state[k]
                if not lpred(obj.get("metadata", {}).get("labels")) or not fpred(obj):
                    continue
                if limit and len(items) >= limit:
                    # More matches follow: hand out a continue token.
                    prev = items[-1]["metadata"]
                    last = (prev.get("namespace", "") + "/" + prev["name"])
                    cont = base64.urlsafe_b64encode(json.dumps(
                        {"v": "meta.k8s.io/v1", "rv": at_rv, "start": last}).encode()).decode()
                    remaining = sum(1 for kk in keys[i:] if lpred(state[kk].get("metadata", {})
                                                                    .get("labels")) and fpred(state[kk]))
                    break
                items.append(output(res, version, obj, in_list=True))
            meta = {"resourceVersion": str(at_rv)}
            if cont:
                meta["continue"] = cont
                meta["remainingItemCount"] = remaining
            return self.send_json(200, {"kind": res.kind + "List", "apiVersion": res.api_version(version),
                                        "metadata": meta, "items": items})

    def check_new_object(self, res, version, ns, obj):
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if not av or not kind:
            raise bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj)[:200])
        if av != res.api_version(version):
            raise bad_request("the API version in the data (%s) does not match the expected API "
                              "version (%s)" % (av, res.api_version(version)))
        if kind != res.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)"
                              % (kind, res.kind))
        md = obj.get("metadata")
        if not isinstance(md, dict):
            raise bad_request("metadata is missing")
        if res.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
        return md

    def validate_name(self, res, name):
        causes = []
        if not name:
            causes.append({"field": "metadata.name", "message": "Required value: name or "
                           "generateName is required"})
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            causes.append({"field": "metadata.name", "message": 'Invalid value: "%s": a lowercase '
                           "RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                           "'-' or '.', and must start and end with an alphanumeric character" % name})
        if causes:
            raise invalid(res, res.kind, name, causes)

    def normalize_secret(self, res, obj):
        if res.kind != "Secret":
            return
        data = obj.get("data") or {}
        for k, v in data.items():
            try:
                base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise bad_request("illegal base64 data at input byte 0 (data[%s])" % k)
        sd = obj.pop("stringData", None) or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(v.encode()).decode()
        if data:
            obj["data"] = data
        obj.setdefault("type", "Opaque")

    def create(self, res, version, ns, body):
        obj = self.parse_body(body)
        store = self.fake.store
        md = self.check_new_object(res, version, ns, obj)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        self.validate_name(res, md.get("name", ""))
        if md.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        self.normalize_secret(res, obj)
        with store.lock:
            if res.namespaced:
                md["namespace"] = ns
                if ("", ns) not in store.bucket(RES_BY_PATH[("", "v1", "namespaces")]):
                    raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                                   {"name": ns, "kind": "namespaces"})
            else:
                md.pop("namespace", None)
            key = (ns, md["name"])
            if key in store.bucket(res):
                d = {"name": md["name"], "kind": res.plural}
                if res.group:
                    d["group"] = res.group
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists'
                               % (res.qualified(), md["name"]), d)
            obj.pop("apiVersion", None)
            obj.pop("kind", None)
            for f in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
                md.pop(f, None)
            store._put_new(res, obj, keep_meta=False)
            return self.send_json(201, output(res, version, obj))

    def write_locked(self, res, key, old, new, status_only):
        """Stores new in place of old (the caller holds the lock and has checked
        preconditions); returns the stored object."""
        store = self.fake.store
        if res.status_sub:
            if status_only:
                merged = copy.deepcopy(old)
                if "status" in new:
                    merged["status"] = new["status"]
                else:
                    merged.pop("status", None)
                new = merged
            else:
                # The main resource ignores status when a status subresource exists.
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        md, omd = new.setdefault("metadata", {}), old["metadata"]
        for f in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
            if f in omd:
                md[f] = omd[f]
            else:
                md.pop(f, None)
        if "generation" in omd:
            md["generation"] = omd["generation"] + (1 if new.get("spec") != old.get("spec") else 0)
        md["resourceVersion"] = omd["resourceVersion"]
        new.pop("apiVersion", None)
        new.pop("kind", None)
        if new == old:
            return old  # a no-op write does not bump the resourceVersion
        md["resourceVersion"] = str(store.next_rv())
        if md.get("deletionTimestamp") and not md.get("finalizers"):
            del store.bucket(res)[key]
            store.record(res, key, "DELETED", new, old)
            return new
        store.bucket(res)[key] = new
        store.record(res, key, "MODIFIED", new, old)
        return new

    def update(self, res, version, ns, name, sub, obj):
        store = self.fake.store
        md = self.check_new_object(res, version, ns, obj)
        if md.get("name") != name:
            raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                              % (md.get("name"), name))
        self.normalize_secret(res, obj)
        with store.lock:
            key = (ns, name)
            old = store.bucket(res).get(key)
            if old is None:
                raise not_found(res, name)
            rv = md.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if md.get("uid") and md["uid"] != old["metadata"]["uid"]:
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (old["metadata"]["uid"], md["uid"]))
            stored = self.write_locked(res, key, old, copy.deepcopy(obj), sub == "status")
            return self.send_json(200, output(res, version, stored))

    def patch(self, res, version, ns, name, sub, body):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/merge-patch+json":
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                           "format - accepted media types include: application/merge-patch+json "
                           "(the fake apiserver implements JSON merge patch only)")
        try:
            patch = json.loads(body)
        except ValueError as e:
            raise bad_request("error decoding patch: %s" % e)
        if not isinstance(patch, dict):
            raise bad_request("error decoding patch: a merge patch must be a JSON object")
        store = self.fake.store
        with store.lock:
            key = (ns, name)
            old = store.bucket(res).get(key)
            if old is None:
                raise not_found(res, name)
            pmd = patch.get("metadata") if isinstance(patch.get("metadata"), dict) else {}
            if pmd.get("resourceVersion") and pmd["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if pmd.get("name") not in (None, name):
                raise bad_request("metadata.name: Invalid value: the name cannot be changed by a patch")
            new = merge_patch(output(res, version, old), patch)
            if not isinstance(new.get("metadata"), dict):
                raise bad_request("metadata: Required value")
            self.normalize_secret(res, new)
            if new.get("metadata", {}).get("labels") is not None and not isinstance(
                    new["metadata"]["labels"], dict):
                raise invalid(res, res.kind, name, [{"field": "metadata.labels",
                                                    "message": "Invalid value: must be an object"}])
            ann = new["metadata"].get("annotations")
            if ann is not None and (not isinstance(ann, dict) or
                                    not all(isinstance(v, str) for v in ann.values())):
                raise invalid(res, res.kind, name, [{"field": "metadata.annotations",
                                                    "message": "Invalid value: values must be strings"}])
            stored = self.write_locked(res, key, old, new, sub == "status")
            return self.send_json(200, output(res, version, stored))

    def delete(self, res, version, ns, name, body):
        opts = {}
        if body:
            try:
                opts = json.loads(body)
            except ValueError:
                raise bad_request("DeleteOptions is not valid JSON")
        pre = (opts or {}).get("preconditions") or {}
        store = self.fake.store
        with store.lock:
            key = (ns, name)
            old = store.bucket(res).get(key)
            if old is None:
                raise not_found(res, name)
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                               "ResourceVersion in object meta: %s"
                               % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                               "object meta: %s" % (pre["uid"], old["metadata"]["uid"]))
            new = copy.deepcopy(old)
            md = new["metadata"]
            if md.get("finalizers"):
                if not md.get("deletionTimestamp"):
                    md["deletionTimestamp"] = now_rfc3339()
                    md["deletionGracePeriodSeconds"] = 0
                    md["resourceVersion"] = str(store.next_rv())
                    store.bucket(res)[key] = new
                    store.record(res, key, "MODIFIED", new, old)
                return self.send_json(200, output(res, version, new))
            md["deletionTimestamp"] = now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
            md["resourceVersion"] = str(store.next_rv())
            del store.bucket(res)[key]
            store.record(res, key, "DELETED", new, old)
            if res.plural in ("pods", "namespaces"):
                return self.send_json(200, output(res, version, new))
            d = {"name": name, "kind": res.plural, "uid": md["uid"]}
            if res.group:
                d["group"] = res.group
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Success", "details": d})

    # -- eviction --------------------------------------------------------------------
    @staticmethod
    def scaled(v, total, round_up):
        if isinstance(v, str) and v.endswith("%"):
            pct = int(v[:-1])
            q, r = divmod(pct * total, 100)
            return q + (1 if r and round_up else 0)
        return int(v)

    def evict(self, res, ns, name, body):
        ev = self.parse_body(body)
        if ev.get("kind") != "Eviction" or ev.get("apiVersion") not in ("policy/v1", "policy/v1beta1"):
            raise bad_request("the body is not a policy/v1 Eviction")
        if (ev.get("metadata") or {}).get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        store = self.fake.store
        pdbres = RES_BY_PATH[("policy", "v1", "poddisruptionbudgets")]
        with store.lock:
            key = (ns, name)
            pod = store.bucket(res).get(key)
            if pod is None:
                raise not_found(res, name)
            labels = pod["metadata"].get("labels") or {}
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Running":
                pdbs = [p for (pns, _n), p in store.bucket(pdbres).items() if pns == ns and
                        all(labels.get(k) == v for k, v in
                            (((p.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
                            .items())]
                if len(pdbs) > 1:
                    raise ApiError(500, "InternalError", "This pod has more than one "
                                   "PodDisruptionBudget, which the eviction subresource does not "
                                   "support.", {"causes": [{"message": "This pod has more than one "
                                                            "PodDisruptionBudget"}]})
                if pdbs:
                    self.check_pdb(store, res, ns, pdbs[0])
            md = copy.deepcopy(pod)
            md["metadata"]["deletionTimestamp"] = now_rfc3339()
            md["metadata"]["resourceVersion"] = str(store.next_rv())
            del store.bucket(res)[key]
            store.record(res, key, "DELETED", md, pod)
        return self.send_json(201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                    "status": "Success", "code": 201})

    def check_pdb(self, store, res, ns, pdb):
        spec = pdb.get("spec") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        pods = [p for (pns, _n), p in store.bucket(res).items() if pns == ns and
                all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
        expected = len(pods)
        healthy = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
        if "minAvailable" in spec:
            desired = self.scaled(spec["minAvailable"], expected, True)
        elif "maxUnavailable" in spec:
            desired = expected - self.scaled(spec["maxUnavailable"], expected, True)
        else:
            desired = expected
        if healthy - desired <= 0:
            raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's "
                           "disruption budget.", {"causes": [{
                               "reason": "DisruptionBudget",
                               "message": "The disruption budget %s needs %d healthy pods and has %d "
                                          "currently" % (pdb["metadata"]["name"], desired, healthy)}]})

    # -- TokenReview -------------------------------------------------------------------
    def token_review(self, res, version, body):
        tr = self.parse_body(body)
        if tr.get("kind") != "TokenReview":
            raise bad_request("the body is not a TokenReview")
        spec = tr.get("spec") or {}
        token = spec.get("token")
        if not token:
            raise invalid(res, "TokenReview", "", [{"field": "spec.token",
                                                   "message": "Required value: token must not be empty"}])
        auds = spec.get("audiences") or []
        entry = self.fake.review_tokens.get(token)
        if entry is None and token in self.fake.tokens:
            entry = {"username": self.fake.tokens[token], "groups": ["system:authenticated"]}
        status = {"user": {}}
        if entry is None:
            status.update({"authenticated": False, "error": "[invalid bearer token, token lookup "
                           "failed]"})
        else:
            tok_auds = entry.get("audiences") or ["https://kubernetes.default.svc.cluster.local"]
            if auds and not set(auds) & set(tok_auds):
                status.update({"authenticated": False, "error": "[invalid bearer token, token "
                               "audiences %s is invalid for the target audiences %s]"
                               % (json.dumps(tok_auds), json.dumps(auds))})
            else:
                user = {k: v for k, v in entry.items() if k != "audiences"}
                status.update({"authenticated": True, "user": user,
                               "audiences": [a for a in auds if a in tok_auds] if auds else tok_auds})
        out = {"kind": "TokenReview", "apiVersion": res.api_version(version),
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return self.send_json(201, out)

    # -- WATCH -------------------------------------------------------------------------
    def watch(self, res, version, ns, query):
        store = self.fake.store
        lpred = parse_label_selector(query.get("labelSelector"))
        fpred = parse_field_selector(query.get("fieldSelector"))
        rvs = query.get("resourceVersion", "")
        timeout = 1800
        if query.get("timeoutSeconds"):
            try:
                timeout = int(query["timeoutSeconds"])
            except ValueError:
                raise bad_request("timeoutSeconds: Invalid value")
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        deadline = time.monotonic() + timeout

        def matches(obj):
            return obj is not None and lpred(obj.get("metadata", {}).get("labels")) and fpred(obj)

        initial = []
        with store.lock:
            if rvs in ("", "0"):
                sent_rv = store.rv
                for k in sorted(store.bucket(res)):
                    obj = store.bucket(res)[k]
                    if (not ns or k[0] == ns) and matches(obj):
                        initial.append({"type": "ADDED", "object": output(res, version, obj)})
                expired = False
            else:
                try:
                    sent_rv = int(rvs)
                except ValueError:
                    raise bad_request("resourceVersion: Invalid value: %s" % rvs)
                expired = sent_rv < store.compacted_rv
            gen = store.watch_gen
            store.active_watches += 1
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            self.end_headers()
            self.status_sent = 200
            if expired:
                self.chunk(self.expired_event(sent_rv, store.compacted_rv))
                self.end_chunks()
                return
            for ev in initial:
                self.chunk(ev)
            while True:
                out, abrupt, closing = [], False, False
                with store.lock:
                    while True:
                        if sent_rv < store.compacted_rv:
                            expired = True
                            break
                        pending = [e for e in store.log if e[0] > sent_rv and e[1] == res.key and
                                   (not ns or e[2][0] == ns)]
                        newer = store.log and store.log[-1][0] > sent_rv
                        if pending or store.watch_gen != gen or time.monotonic() >= deadline \
                                or self.server.stopping:
                            break
                        if newer:
                            sent_rv = store.log[-1][0]
                        store.lock.wait(0.2)
                    if expired:
                        pending = []
                    for rv, _rk, _ok, typ, obj, prev in pending:
                        now_m, was_m = matches(obj), matches(prev)
                        if typ == "DELETED":
                            t = "DELETED" if was_m else None
                        elif now_m and not was_m:
                            t = "ADDED"
                        elif now_m and was_m:
                            t = "MODIFIED"
                        elif was_m:
                            t = "DELETED"  # left the selector
                        else:
                            t = None
                        if t:
                            out.append({"type": t, "object": output(res, version, obj)})
                        sent_rv = rv
                    if store.watch_gen != gen:
                        closing, abrupt = True, store.watch_abrupt
                    elif time.monotonic() >= deadline or self.server.stopping:
                        closing = True
                    cur_rv = store.rv
                for ev in out:
                    self.chunk(ev)
                if expired:
                    # History this watch still needed was compacted away.
                    self.chunk(self.expired_event(sent_rv, store.compacted_rv))
                    self.end_chunks()
                    return
                if closing:
                    if abrupt:
                        # A dropped connection: no terminating chunk.
                        self.close_connection = True
                        try:
                            self.connection.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                        return
                    if bookmarks and time.monotonic() >= deadline:
                        self.chunk({"type": "BOOKMARK", "object": {
                            "kind": res.kind, "apiVersion": res.api_version(version),
                            "metadata": {"resourceVersion": str(max(sent_rv, cur_rv))}}})
                    self.end_chunks()
                    return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            with store.lock:
                store.active_watches -= 1

    @staticmethod
    def expired_event(rv, compacted):
        return {"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version: %d (%d)" % (rv, compacted),
            "reason": "Expired", "code": 410}}

    def chunk(self, ev):
        data = (json.dumps(ev) + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, fake, ctx, verbose):
        super().__init__(addr, Handler)
        self.fake = fake
        self.ctx = ctx
        self.verbose = verbose
        self.stopping = False

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, so that a slow or
        # broken client cannot stall the accept loop.
        request.settimeout(30)
        # Go's net/http (the real apiserver) sets TCP_NODELAY; without it a
        # response written as headers + body waits out a delayed ACK.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if self.verbose:
                sys.stderr.write("fake-apiserver: TLS handshake failed: %s\n" % e)
            return
        try:
            conn.settimeout(None)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--cert", required=True, help="server certificate (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--token", action="append", default=[],
                    help="accepted bearer token as TOKEN=USER (repeatable)")
    ap.add_argument("--client-ca", help="accept client certificates issued by this CA (CN = user)")
    ap.add_argument("--seed", help="JSON file: {items: [objects], tokenReviews: {token: user}}")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    tokens = {}
    for t in args.token:
        tok, _, user = t.partition("=")
        tokens[tok] = user or "admin"
    seed = None
    if args.seed:
        with open(args.seed) as f:
            seed = json.load(f)
    fake = Fake(tokens, seed)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL

    srv = Server(("127.0.0.1", args.port), fake, ctx, args.verbose)

    def stop(_sig, _frm):
        srv.stopping = True
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    sys.stdout.write("fake kube-apiserver listening on https://127.0.0.1:%d\n" % port)
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()


if __name__ == "__main__":
    main()
