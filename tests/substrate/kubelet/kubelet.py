#!/usr/bin/env python3
"""Test-only kubelet (and scheduler) stand-in for the local test clusters.

tests/substrate/clusters starts one per cluster. It is a client of that
cluster's kube-apiserver on 127.0.0.1 only (admin client certificate) and
listens on nothing. It runs the pods of Lifeboat's data-mover Jobs as plain
processes on this machine, so that a Job created in a test cluster runs and
completes; every other pod is left alone (it stays Pending, unscheduled).

Node: registers Node `lifeboat-test-node` (labels kubernetes.io/hostname,
kubernetes.io/os=linux, kubernetes.io/arch, lifeboat.test/kubelet-stand-in;
taint lifeboat.test/kubelet-stand-in=true:NoSchedule so that DaemonSets and a
scheduler leave it alone), with a Ready condition. Every 10 s it renews the
node's Lease in kube-node-lease and the Ready heartbeat, so the node lifecycle
controller never marks it NotReady (and PodGC never takes its pods for orphans).

Which pods: every container's and init container's image starts with
LIFEBOAT_TEST_IMAGE_PREFIX (default `lifeboat.test/`), and the pod is either
unscheduled (empty spec.nodeName, default scheduler, no scheduling gates, its
nodeSelector matches the node's labels; affinity and taints are not looked
at) or already bound to this node. Unscheduled ones are bound with the
pods/binding subresource. Pods are polled (both lists, about every 0.5 s).

Before a pod runs, its volumes are set up:
  persistentVolumeClaim  must be Bound (else the pod stays Pending, container
                         waiting ContainerCreating, re-checked every poll);
                         PVC -> PV -> spec.csi.driver + volumeHandle ->
                         hostpath.csi.k8s.io: <csi-dir>/hostpath/volumes/<handle>
                         ebs.csi.aws.com:     <csi-dir>/ebs/volumes/<handle>
                         (a directory for a Filesystem hostpath volume, an
                         image file for Block and for every ebs volume: an
                         ebs Filesystem volume cannot be mounted, the pod fails)
  emptyDir               a per-pod directory
  secret, configMap, downwardAPI, projected (serviceAccountToken through the
                         TokenRequest API, configMap, secret, downwardAPI: the
                         kube-api-access-* volume the ServiceAccount admission
                         adds to every pod) written once into per-pod directories
  anything else          pod Failed, reason UnsupportedVolume, naming the volume

Paths: a container's volumeMounts[].mountPath (with subPath), volumeDevices[].
devicePath and terminationMessagePath (default /dev/termination-log; it maps to
<state-dir>/pods/<uid>/<container>.termination-log) map to host paths. In
command, args and literal env values (`value`, not those from Secrets,
ConfigMaps or fields), a value that equals such a path or starts with
path + "/" has that prefix replaced, and so has the part after the first "="
of a value like `--opt=/path/...` (the longest matching path wins; one
substitution per value). $(VAR) references are expanded first, as kubelet
does. Nothing else is rewritten: a path inside a longer string (a shell
script) is not. readOnly is not enforced.

Process: command[0] whose basename is `lifeboat` runs the binary
LIFEBOAT_BIN (default ${CARGO_TARGET_DIR:-<repo>/target}/debug/lifeboat,
looked for when the container starts; missing -> pod Failed naming the path);
any other command[0] runs as given (found on PATH if it has no slash). A
container without a command fails (there are no images to take one from).
Environment: only the pod's (env value / valueFrom secretKeyRef,
configMapKeyRef, fieldRef; envFrom secretRef, configMapRef; a missing required
Secret, ConfigMap or key keeps the pod Pending with the container waiting,
reason CreateContainerConfigError, as kubelet does) over the "node"
environment: PATH, HOME (the per-pod directory, not the user's),
NO_PROXY/no_proxy=127.0.0.1,localhost, AWS_EC2_METADATA_DISABLED=true,
KUBERNETES_SERVICE_HOST/PORT (the API server's address: there is no Service
network to give the `kubernetes` Service's, as kubelet does), TMPDIR
(the host path of a volume mounted at /tmp, when there is one), and the
variables of target/substrate/aws.env when that file exists (read at container
start: moto's endpoint and credentials stand in for the node's instance role),
with AWS_REGION/AWS_DEFAULT_REGION set to the cluster's region (--aws-region).
The pod's own env wins. Each container runs in its own session/process group,
cwd its workingDir when that maps into a directory volume (created if
missing), else the per-pod directory <state-dir>/pods/<uid>/; stdout+stderr go to
<log-dir>/pods/<namespace>_<pod>.log (pods with one container and no init
containers) or <namespace>_<pod>_<container>.log. When a container's main
process exits, the rest of its process group is killed.

Status (pods/status, strategic merge patch): Pending with waiting reasons while
preparing; Running with containerStatuses running/ready/started and conditions
PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady, Ready,
hostIP/podIP 127.0.0.1; on exit Succeeded (all exit 0) or Failed, with
state.terminated {exitCode, reason Completed|Error, startedAt, finishedAt,
message}: message = the termination message file (first 4096 bytes), or with
terminationMessagePolicy FallbackToLogsOnError, a non-zero exit and an empty
file, the last 80 lines of the container's log, at most its last 2048 bytes.
Exit by signal N is exitCode 128+N. A container the stand-in stops because the
pod fails (deadline, stand-in stopping) without a message of its own gets the
pod's failure message. restartPolicy OnFailure/Always restart the
container in place (back-off 1 s doubling to 30 s). Init containers run one by
one first. spec.activeDeadlineSeconds is enforced (reason DeadlineExceeded).
No probes, lifecycle hooks, resources, images, isolation or port handling.

Deletion: a pod of this node with a deletionTimestamp gets its process groups
SIGTERMed (SIGKILL after min(grace period, 3 s)), a terminal status, then a
DELETE with gracePeriodSeconds=0 and a uid precondition (also pods of this node
that it does not run). On start, pods of this node still marked Running (the
stand-in was restarted) fail with "the kubelet stand-in restarted while the
container ran"; their leftover processes (pid files under the state dir) are
killed. On SIGTERM it kills its containers and marks their pods Failed.

Every apiserver error is logged (stderr) and retried at the next poll; one
pod's error never stops the others.

Usage (the clusters script passes all of these):
  kubelet.py --cluster NAME --server https://127.0.0.1:PORT --ca CA --cert CRT --key KEY
             --state-dir DIR --log-dir DIR --csi-dir DIR [--aws-env FILE]
             [--aws-region REGION] [--node-name NAME] [--repo-root DIR]
Env: LIFEBOAT_BIN, CARGO_TARGET_DIR, LIFEBOAT_TEST_IMAGE_PREFIX.
Python 3 standard library only.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import platform
import posixpath
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 10
LEASE_DURATION_SECONDS = 40
KILL_GRACE_CAP_SECONDS = 3.0
TERMINATION_MESSAGE_MAX = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
TOKEN_EXPIRATION_SECONDS = 3607
STAND_IN_LABEL = "lifeboat.test/kubelet-stand-in"
RESTARTED_MESSAGE = "the kubelet stand-in restarted while the container ran"
STOPPED_MESSAGE = "the kubelet stand-in stopped while the container ran"
CSI_DRIVER_DIRS = {"hostpath.csi.k8s.io": "hostpath", "ebs.csi.aws.com": "ebs"}
ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

STOP = threading.Event()


def log(msg, *args):
    if args:
        msg = msg % args
    ts = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    sys.stderr.write("%s %s\n" % (ts, msg))
    sys.stderr.flush()


def now_time():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    try:
        return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def pod_key(pod):
    md = pod.get("metadata", {})
    return "%s/%s" % (md.get("namespace"), md.get("name"))


# ------------------------------------------------------------------- the API

class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__("HTTP %s: %s" % (status, message) if status else message)
        self.status = status


class Api:
    """A tiny Kubernetes API client: one keep-alive connection per thread."""

    def __init__(self, server, ca, cert, key, timeout=15.0):
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise ValueError("--server must be https://HOST:PORT, not %r" % server)
        self.host, self.port = url.hostname, url.port or 443
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.timeout = timeout
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
            self.local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self.local, "conn", None)
        self.local.conn = None
        if conn is not None:
            conn.close()

    def request(self, method, path, body=None, content_type="application/json", query=None):
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "lifeboat-kubelet-stand-in"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, OSError) as e:
                self._drop()
                if attempt == 0:
                    continue  # a keep-alive connection the server closed: once more
                raise ApiError(0, "%s %s: %s" % (method, path, e))
            if resp.status >= 400:
                try:
                    msg = json.loads(raw).get("message") or raw.decode(errors="replace")
                except ValueError:
                    msg = raw.decode(errors="replace")
                raise ApiError(resp.status, "%s %s: %s" % (method, path, msg))
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return None
        raise AssertionError("unreachable")

    def get(self, path, query=None):
        return self.request("GET", path, query=query)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def merge_patch(self, path, body):
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def strategic_patch(self, path, body):
        return self.request("PATCH", path, body, "application/strategic-merge-patch+json")

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)


def pod_path(ns, name, sub=""):
    return "/api/v1/namespaces/%s/pods/%s%s" % (ns, name, sub)


# ---------------------------------------------------------------------- node

class NodeKeeper:
    """Registers the Node and keeps its Lease and Ready condition fresh."""

    def __init__(self, api, name, kubelet_version):
        self.api = api
        self.name = name
        self.kubelet_version = kubelet_version
        arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
                "s390x": "s390x"}.get(platform.machine(), platform.machine())
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                       "beta.kubernetes.io/arch": arch, STAND_IN_LABEL: "true"}
        self.taint = {"key": STAND_IN_LABEL, "value": "true", "effect": "NoSchedule"}
        self.arch = arch
        self.ready_since = None

    def _conditions(self, ready_since):
        now = now_time()
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet stand-in: no memory pressure"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet stand-in: no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet stand-in: sufficient PIDs"),
            ("Ready", "True", "KubeletReady", "the kubelet stand-in is posting ready status"),
        ]
        return [{"type": t, "status": s, "reason": r, "message": m, "lastHeartbeatTime": now,
                 "lastTransitionTime": ready_since if t == "Ready" else (self.ready_since or now)}
                for t, s, r, m in conds]

    def _status(self, ready_since):
        cap = {"cpu": str(os.cpu_count() or 2), "memory": "%dKi" % self._mem_kib(),
               "pods": "110", "ephemeral-storage": "100Gi"}
        return {
            "capacity": cap, "allocatable": cap,
            "conditions": self._conditions(ready_since),
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "",
                         "kernelVersion": platform.release(), "osImage": "lifeboat kubelet stand-in",
                         "containerRuntimeVersion": "lifeboat-stand-in://1",
                         "kubeletVersion": self.kubelet_version, "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": self.arch},
        }

    @staticmethod
    def _mem_kib():
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 4 * 1024 * 1024

    @staticmethod
    def _ready_since(node):
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready" and c.get("status") == "True":
                return c.get("lastTransitionTime")
        return None

    def ensure(self):
        """Create the Node, or bring an existing one's labels, taint and status up to date."""
        path = "/api/v1/nodes/" + self.name
        node = self.api.get_or_none(path)
        if node is None:
            since = now_time()
            body = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": self.name, "labels": self.labels},
                    "spec": {"taints": [self.taint]},
                    "status": self._status(since)}
            node = self.api.post("/api/v1/nodes", body)
            log("node %s registered", self.name)
            # Create may drop the status: set it explicitly.
            self.api.strategic_patch(path + "/status", {"status": self._status(since)})
        else:
            taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != STAND_IN_LABEL]
            self.api.merge_patch(path, {"metadata": {"labels": self.labels},
                                        "spec": {"taints": taints + [self.taint]}})
            since = self._ready_since(node) or now_time()
            self.api.strategic_patch(path + "/status", {"status": self._status(since)})
            log("node %s exists, updated", self.name)
        self.ready_since = since
        self.renew_lease(node)
        return node

    def heartbeat(self):
        path = "/api/v1/nodes/" + self.name
        node = self.api.get_or_none(path)
        if node is None:
            log("node %s is gone: registering it again", self.name)
            self.ensure()
            return
        since = self._ready_since(node)
        if since is None:
            since = now_time()
            log("node %s was not Ready (node lifecycle controller): Ready again", self.name)
        self.api.strategic_patch(path + "/status", {"status": {"conditions": self._conditions(since)}})
        self.renew_lease(node)

    def renew_lease(self, node):
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + self.name
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": now_micro()}
        try:
            self.api.merge_patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            md = {"name": self.name, "namespace": "kube-node-lease"}
            uid = (node or {}).get("metadata", {}).get("uid")
            if uid:
                md["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": uid}]
            self.api.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                          {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": md, "spec": spec})

    def run(self):
        while not STOP.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as e:  # noqa: BLE001 - logged, retried at the next beat
                log("node heartbeat failed (retried in %ds): %s", HEARTBEAT_SECONDS, e)


# ------------------------------------------------------------- pod settings

class Wait(Exception):
    """The pod cannot start yet (re-checked at the next poll)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


class Fail(Exception):
    """The pod can never start: it fails."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason
        self.message = message


def expand(value, env):
    """kubelet's $(VAR) expansion: defined names are replaced, $$ is a $."""
    out, i, n = [], 0, len(value)
    while i < n:
        c = value[i]
        if c == "$" and i + 1 < n:
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = value.find(")", i + 2)
                if end != -1:
                    name = value[i + 2:end]
                    if name in env:
                        out.append(env[name])
                    else:
                        out.append(value[i:end + 1])
                    i = end + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def norm_container_path(p):
    """/a/b/ and /a//b are /a/b (as a mount point)."""
    return posixpath.normpath(p) if p else p


def substitute(value, mappings):
    """Replace a container path prefix by its host path: the whole value, or
    the part after the first '=' (--opt=/path). mappings: longest path first."""
    def one(s):
        for cpath, hpath in mappings:
            if s == cpath:
                return hpath
            if cpath != "/" and s.startswith(cpath + "/"):
                return hpath + s[len(cpath):]
        return None

    r = one(value)
    if r is not None:
        return r
    eq = value.find("=")
    if eq >= 0:
        r = one(value[eq + 1:])
        if r is not None:
            return value[:eq + 1] + r
    return value


def safe_join(base, rel, what):
    rel = rel or ""
    if rel.startswith("/") or ".." in rel.split("/"):
        raise Fail("InvalidPath", "%s: path %r must be relative, without '..'" % (what, rel))
    return os.path.join(base, rel) if rel else base


def process_start_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


# ---------------------------------------------------------------- containers

class Container:
    def __init__(self, runner, spec, init):
        self.runner = runner
        self.spec = spec
        self.init = init
        self.name = spec.get("name", "")
        self.image = spec.get("image", "")
        self.proc = None
        self.pid = None
        self.started_at = None        # RFC 3339, the current run
        self.terminated = None        # dict: the final (or last) termination
        self.last_state = None        # termination before a restart
        self.restart_count = 0
        self.next_start = None        # monotonic time of a pending restart
        self.waiting = ("ContainerCreating" if not init else "PodInitializing", "")
        self.log_offset = 0
        self.kill_deadline = None
        # Filled in by prepare():
        self.argv = None
        self.env = None
        self.cwd = None
        self.log_path = None
        self.term_path = None
        self.tmpdir = None            # host path of a volume mounted at /tmp

    @property
    def running(self):
        return self.proc is not None

    def will_restart(self, exit_code):
        if self.runner.deleting or self.runner.failure:
            return False
        policy = self.runner.restart_policy
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    def final(self):
        """Terminated for good (no restart pending)."""
        return self.terminated is not None and self.next_start is None and not self.running

    def start(self):
        rp = self.runner
        self.waiting = None
        self.next_start = None
        self.terminated = None
        self.kill_deadline = None
        self.started_at = now_time()
        try:
            os.makedirs(os.path.dirname(self.term_path), exist_ok=True)
            open(self.term_path, "wb").close()
            logf = open(self.log_path, "ab" if self.restart_count else "wb")
        except OSError as e:
            self._start_failed("cannot create the log or termination message file: %s" % e)
            return
        self.log_offset = logf.tell()
        argv = list(self.argv)
        if os.path.basename(argv[0]) == "lifeboat":
            argv[0] = rp.kubelet.lifeboat_bin()
            if not os.path.isfile(argv[0]) or not os.access(argv[0], os.X_OK):
                logf.close()
                rp.fail("LifeboatBinaryMissing",
                        "container %s: the lifeboat binary %s does not exist (set LIFEBOAT_BIN, or "
                        "build it: cargo build -p lifeboat-cli)" % (self.name, argv[0]))
                self._start_failed(rp.failure[1])
                return
        env = rp.kubelet.node_env(rp.pod_dir)
        if self.tmpdir:
            env["TMPDIR"] = self.tmpdir
        env.update(self.env)
        try:
            self.proc = subprocess.Popen(argv, env=env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True)
        except OSError as e:
            logf.close()
            self._start_failed("cannot start %s: %s" % (argv[0], e))
            return
        logf.close()
        self.pid = self.proc.pid
        try:
            with open(self._pid_file(), "w") as f:
                f.write("%d %s\n" % (self.pid, process_start_ticks(self.pid) or ""))
        except OSError:
            pass
        log("%s: container %s started, pid %d: %s", rp.key, self.name, self.pid, json.dumps(argv))

    def _pid_file(self):
        return os.path.join(self.runner.pod_dir, "%s.pid" % self.name)

    def _start_failed(self, message):
        now = now_time()
        self.proc = None
        self.terminated = {"exitCode": 128, "reason": "StartError", "message": message,
                           "startedAt": now, "finishedAt": now}
        log("%s: container %s: %s", self.runner.key, self.name, message)
        self._after_exit(128)

    def poll(self):
        """Reap the process; returns True when it exited just now."""
        if self.proc is None:
            if self.next_start is not None and time.monotonic() >= self.next_start:
                self.restart_count += 1
                self.start()
            return False
        if self.kill_deadline is not None and time.monotonic() >= self.kill_deadline:
            self.signal(signal.SIGKILL)
            self.kill_deadline = None
        rc = self.proc.poll()
        if rc is None:
            return False
        # The container ends with its main process: kill what it left behind.
        self.signal(signal.SIGKILL)
        self.proc = None
        try:
            os.unlink(self._pid_file())
        except OSError:
            pass
        code = rc if rc >= 0 else 128 - rc
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started_at, "finishedAt": now_time(),
                "containerID": "lifeboat-stand-in://%d" % self.pid}
        if rc < 0:
            term["signal"] = -rc
        msg = self._termination_message(code)
        if not msg and self.runner.failure and code != 0:
            msg = self.runner.failure[1]  # killed by the stand-in: say why
        if msg:
            term["message"] = msg
        self.terminated = term
        log("%s: container %s (pid %d) exited with %d", self.runner.key, self.name, self.pid, code)
        self._after_exit(code)
        return True

    def _after_exit(self, code):
        if self.will_restart(code):
            backoff = min(2 ** self.restart_count, 30)
            self.last_state = self.terminated
            self.next_start = time.monotonic() + backoff
            self.waiting = ("CrashLoopBackOff", "back-off %ds restarting failed container=%s pod=%s"
                            % (backoff, self.name, self.runner.name))

    def _termination_message(self, code):
        msg = b""
        try:
            with open(self.term_path, "rb") as f:
                msg = f.read(TERMINATION_MESSAGE_MAX)
        except OSError:
            pass
        policy = self.spec.get("terminationMessagePolicy") or "File"
        if not msg and code != 0 and policy == "FallbackToLogsOnError":
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(self.log_offset)
                    data = f.read()
            except OSError:
                data = b""
            lines = data.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
            msg = b"".join(lines)[-FALLBACK_LOG_BYTES:]
        return msg.decode("utf-8", errors="replace")

    def signal(self, sig):
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self, grace):
        if self.proc is None:
            self.next_start = None
            return
        if grace <= 0:
            self.signal(signal.SIGKILL)
        else:
            self.signal(signal.SIGTERM)
            self.kill_deadline = time.monotonic() + grace
        self.next_start = None

    def status(self):
        st = {"name": self.name, "image": self.image, "imageID": "", "restartCount": self.restart_count,
              "ready": False, "started": False}
        if self.running:
            st["state"] = {"running": {"startedAt": self.started_at}}
            st["ready"] = st["started"] = True
            st["containerID"] = "lifeboat-stand-in://%d" % self.pid
        elif self.terminated is not None and self.next_start is None:
            st["state"] = {"terminated": self.terminated}
            if "containerID" in self.terminated:
                st["containerID"] = self.terminated["containerID"]
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            w = {"reason": reason}
            if message:
                w["message"] = message
            st["state"] = {"waiting": w}
        if self.last_state is not None:
            st["lastState"] = {"terminated": self.last_state}
        return st


# ---------------------------------------------------------------------- pods

class PodRunner:
    def __init__(self, kubelet, pod):
        self.kubelet = kubelet
        md = pod["metadata"]
        self.uid = md["uid"]
        self.ns = md["namespace"]
        self.name = md["name"]
        self.key = "%s/%s" % (self.ns, self.name)
        self.pod = pod
        spec = pod.get("spec") or {}
        self.restart_policy = spec.get("restartPolicy") or "Always"
        self.pod_dir = os.path.join(kubelet.state_dir, "pods", self.uid)
        self.init = [Container(self, c, True) for c in spec.get("initContainers") or []]
        self.main = [Container(self, c, False) for c in spec.get("containers") or []]
        self.prepared = False
        self.failure = None          # (reason, message): the pod fails
        self.deleting = False
        self.start_time = ((pod.get("status") or {}).get("startTime")) or now_time()
        self.transitions = {}        # condition type -> (status, lastTransitionTime)
        self.last_sent = None
        self.volumes = {}            # volume name -> (host path, kind: dir|file)
        self.deadline_checked = False

    # ---------------------------------------------------------- preparing

    def fail(self, reason, message):
        """The pod fails: its running containers are stopped (SIGTERM, SIGKILL
        after min(grace period, 3 s)), none is started or restarted."""
        if self.failure is None:
            self.failure = (reason, message)
            log("%s: fails: %s: %s", self.key, reason, message)
            self.kill(min(self._grace(), KILL_GRACE_CAP_SECONDS))

    def prepare(self):
        """Set up volumes, env and argv; raises Wait or Fail."""
        pod = self.pod
        spec = pod.get("spec") or {}
        os.makedirs(self.pod_dir, exist_ok=True)
        for c in spec.get("initContainers") or []:
            if c.get("restartPolicy") == "Always":
                raise Fail("Unsupported", "init container %s: sidecar containers (restartPolicy Always) "
                                          "are not supported by the kubelet stand-in" % c.get("name"))
        # Volumes set up on an earlier poll are kept (tokens are requested once).
        for v in spec.get("volumes") or []:
            if v["name"] not in self.volumes:
                self.volumes[v["name"]] = self._volume(v)
        for c in self.init + self.main:
            self._prepare_container(c, self.volumes)
        self.prepared = True

    def _volume(self, v):
        name = v["name"]
        vdir = os.path.join(self.pod_dir, "volumes", name)
        api = self.kubelet.api
        if "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"].get("claimName", "")
            pvc = api.get_or_none("/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (self.ns, claim))
            if pvc is None:
                raise Wait("ContainerCreating", 'volume %s: persistentvolumeclaim "%s" not found' % (name, claim))
            if pvc["metadata"].get("deletionTimestamp"):
                raise Wait("ContainerCreating", 'volume %s: persistentvolumeclaim "%s" is being deleted'
                           % (name, claim))
            phase = (pvc.get("status") or {}).get("phase")
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if phase != "Bound" or not pv_name:
                raise Wait("ContainerCreating", 'volume %s: persistentvolumeclaim "%s" is not Bound (phase %s)'
                           % (name, claim, phase))
            pv = api.get_or_none("/api/v1/persistentvolumes/" + pv_name)
            if pv is None:
                raise Wait("ContainerCreating", "volume %s: persistentvolume %s not found" % (name, pv_name))
            csi = (pv.get("spec") or {}).get("csi")
            if not csi:
                raise Fail("UnsupportedVolume", "volume %s: persistentvolume %s (claim %s) is not a CSI volume; the "
                           "kubelet stand-in runs only CSI volumes of %s"
                           % (name, pv_name, claim, ", ".join(sorted(CSI_DRIVER_DIRS))))
            driver = csi.get("driver")
            if driver not in CSI_DRIVER_DIRS:
                raise Fail("UnsupportedVolume", "volume %s: persistentvolume %s (claim %s) is of CSI driver %s; the "
                           "kubelet stand-in runs only %s"
                           % (name, pv_name, claim, driver, ", ".join(sorted(CSI_DRIVER_DIRS))))
            host = os.path.join(self.kubelet.csi_dir, CSI_DRIVER_DIRS[driver], "volumes", csi.get("volumeHandle", ""))
            if not csi.get("volumeHandle") or not os.path.exists(host):
                raise Fail("VolumeDataMissing", "volume %s: the data of persistentvolume %s (%s, handle %s) is not "
                           "at %s" % (name, pv_name, driver, csi.get("volumeHandle"), host))
            return (host, "dir" if os.path.isdir(host) else "file",
                    "persistentvolume %s (claim %s, %s)" % (pv_name, claim, driver))
        if "emptyDir" in v:
            os.makedirs(vdir, exist_ok=True)
            return (vdir, "dir", "emptyDir")
        if "secret" in v:
            src = v["secret"]
            self._write_files(vdir, self._secret_or_configmap("secret", src.get("secretName"), src.get("optional"),
                                                              name, src.get("items")), name)
            return (vdir, "dir", "secret")
        if "configMap" in v:
            src = v["configMap"]
            self._write_files(vdir, self._secret_or_configmap("configmap", src.get("name"), src.get("optional"),
                                                              name, src.get("items")), name)
            return (vdir, "dir", "configMap")
        if "downwardAPI" in v:
            self._write_files(vdir, self._downward(v["downwardAPI"].get("items"), name), name)
            return (vdir, "dir", "downwardAPI")
        if "projected" in v:
            files = {}
            for s in v["projected"].get("sources") or []:
                if "serviceAccountToken" in s:
                    files.update(self._token(s["serviceAccountToken"], name))
                elif "secret" in s:
                    files.update(self._secret_or_configmap("secret", s["secret"].get("name"),
                                                           s["secret"].get("optional"), name, s["secret"].get("items")))
                elif "configMap" in s:
                    files.update(self._secret_or_configmap("configmap", s["configMap"].get("name"),
                                                           s["configMap"].get("optional"), name,
                                                           s["configMap"].get("items")))
                elif "downwardAPI" in s:
                    files.update(self._downward(s["downwardAPI"].get("items"), name))
                else:
                    raise Fail("UnsupportedVolume", "volume %s: projected source %s is not supported by the kubelet "
                                                    "stand-in" % (name, ",".join(sorted(s))))
            self._write_files(vdir, files, name)
            return (vdir, "dir", "projected")
        kinds = ",".join(sorted(k for k in v if k != "name")) or "?"
        raise Fail("UnsupportedVolume", "volume %s: volume type %s is not supported by the kubelet stand-in "
                                        "(supported: persistentVolumeClaim of %s, emptyDir, secret, configMap, "
                                        "downwardAPI, projected)" % (name, kinds, ", ".join(sorted(CSI_DRIVER_DIRS))))

    def _secret_or_configmap(self, kind, obj_name, optional, vol, items):
        """{relative path: bytes} of a Secret or ConfigMap (all keys, or items)."""
        data = self._get_data(kind, obj_name)
        if data is None:
            if optional:
                return {}
            raise Wait("ContainerCreating", 'volume %s: %s "%s" not found' % (vol, kind, obj_name))
        if not items:
            return dict(data)
        out = {}
        for it in items:
            if it.get("key") not in data:
                if optional:
                    continue
                raise Wait("ContainerCreating", 'volume %s: key %s not found in %s "%s"'
                           % (vol, it.get("key"), kind, obj_name))
            out[it.get("path") or it["key"]] = data[it["key"]]
        return out

    def _get_data(self, kind, obj_name):
        """A Secret's or ConfigMap's data as {key: bytes}, None when it does not exist."""
        res = "secrets" if kind == "secret" else "configmaps"
        obj = self.kubelet.api.get_or_none("/api/v1/namespaces/%s/%s/%s" % (self.ns, res, obj_name))
        if obj is None:
            return None
        out = {}
        if kind == "secret":
            for k, val in (obj.get("data") or {}).items():
                out[k] = base64.b64decode(val or "")
            for k, val in (obj.get("stringData") or {}).items():
                out[k] = val.encode()
        else:
            for k, val in (obj.get("data") or {}).items():
                out[k] = (val or "").encode()
            for k, val in (obj.get("binaryData") or {}).items():
                out[k] = base64.b64decode(val or "")
        return out

    def _field(self, field_path, what):
        md = self.pod["metadata"]
        spec = self.pod.get("spec") or {}
        simple = {"metadata.name": md.get("name"), "metadata.namespace": md.get("namespace"),
                  "metadata.uid": md.get("uid"), "spec.nodeName": self.kubelet.node_name,
                  "spec.serviceAccountName": spec.get("serviceAccountName"),
                  "status.hostIP": "127.0.0.1", "status.podIP": "127.0.0.1",
                  "status.hostIPs": "127.0.0.1", "status.podIPs": "127.0.0.1"}
        if field_path in simple:
            return simple[field_path] or ""
        if field_path in ("metadata.labels", "metadata.annotations"):
            m = md.get(field_path.split(".")[1]) or {}
            return "\n".join('%s="%s"' % (k, m[k]) for k in sorted(m))
        mm = re.match(r"^metadata\.(labels|annotations)\['(.*)'\]$", field_path)
        if mm:
            return (md.get(mm.group(1)) or {}).get(mm.group(2), "")
        raise Fail("Unsupported", "%s: fieldRef %s is not supported by the kubelet stand-in" % (what, field_path))

    def _downward(self, items, vol):
        out = {}
        for it in items or []:
            if "fieldRef" in it:
                out[it["path"]] = self._field(it["fieldRef"].get("fieldPath"), "volume " + vol).encode()
            else:
                raise Fail("Unsupported", "volume %s: downwardAPI item %s: only fieldRef is supported by the "
                                          "kubelet stand-in" % (vol, it.get("path")))
        return out

    def _token(self, src, vol):
        sa = (self.pod.get("spec") or {}).get("serviceAccountName") or "default"
        spec = {"expirationSeconds": max(int(src.get("expirationSeconds") or TOKEN_EXPIRATION_SECONDS), 600),
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}
        if src.get("audience"):
            spec["audiences"] = [src["audience"]]
        try:
            tr = self.kubelet.api.post("/api/v1/namespaces/%s/serviceaccounts/%s/token" % (self.ns, sa),
                                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": spec})
        except ApiError as e:
            if e.status == 404:
                raise Wait("ContainerCreating", 'volume %s: serviceaccount "%s" not found' % (vol, sa))
            raise
        return {src.get("path") or "token": tr["status"]["token"].encode()}

    def _write_files(self, vdir, files, vol):
        os.makedirs(vdir, exist_ok=True)
        for rel, data in files.items():
            path = safe_join(vdir, rel, "volume " + vol)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

    def _prepare_container(self, c, volumes):
        spec = c.spec
        what = "container %s" % c.name
        # Path mapping: mounts, devices, the termination message file.
        mappings = []
        for m in spec.get("volumeMounts") or []:
            if m.get("subPathExpr"):
                raise Fail("Unsupported", "%s: subPathExpr is not supported by the kubelet stand-in" % what)
            vol = volumes.get(m.get("name"))
            if vol is None:
                raise Fail("UnsupportedVolume", "%s: volumeMount of unknown volume %s" % (what, m.get("name")))
            host, kind, desc = vol
            if kind != "dir":
                raise Fail("UnsupportedVolume", "%s: volume %s (%s) is an image file at %s, not a directory: it "
                                                "cannot be mounted at %s (an ebs volume is always an unformatted "
                                                "image; use volumeDevices)" % (what, m["name"], desc, host,
                                                                               m.get("mountPath")))
            if m.get("subPath"):
                host = safe_join(host, m["subPath"], "%s: subPath" % what)
                os.makedirs(host, exist_ok=True)
            mappings.append((norm_container_path(m["mountPath"]), host))
        for d in spec.get("volumeDevices") or []:
            vol = volumes.get(d.get("name"))
            if vol is None:
                raise Fail("UnsupportedVolume", "%s: volumeDevice of unknown volume %s" % (what, d.get("name")))
            host, kind, desc = vol
            if kind != "file":
                raise Fail("UnsupportedVolume", "%s: volume %s (%s) is a directory at %s, not a block image: it "
                                                "cannot be a device at %s" % (what, d["name"], desc, host,
                                                                              d.get("devicePath")))
            mappings.append((norm_container_path(d["devicePath"]), host))
        term = spec.get("terminationMessagePath") or "/dev/termination-log"
        c.term_path = os.path.join(self.pod_dir, "%s.termination-log" % c.name)
        mappings.append((norm_container_path(term), c.term_path))
        mappings.sort(key=lambda m: len(m[0]), reverse=True)
        c.tmpdir = dict(mappings).get("/tmp")

        # Environment (container view first: $(VAR) expands to unmapped values).
        env = {}
        literal = set()  # names whose value the pod spec spells out
        for ef in spec.get("envFrom") or []:
            prefix = ef.get("prefix") or ""
            if "secretRef" in ef or "configMapRef" in ef:
                kind = "secret" if "secretRef" in ef else "configmap"
                ref = ef.get("secretRef") or ef.get("configMapRef") or {}
                data = self._get_data(kind, ref.get("name"))
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise Wait("CreateContainerConfigError", '%s "%s" not found' % (kind, ref.get("name")))
                for k, val in data.items():
                    if ENV_NAME_RE.match(prefix + k):
                        env[prefix + k] = val.decode("utf-8", errors="surrogateescape")
        for e in spec.get("env") or []:
            name = e.get("name")
            if "valueFrom" not in e:
                env[name] = expand(e.get("value") or "", env)
                literal.add(name)
                continue
            literal.discard(name)
            vf = e["valueFrom"]
            if "secretKeyRef" in vf or "configMapKeyRef" in vf:
                kind = "secret" if "secretKeyRef" in vf else "configmap"
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef") or {}
                data = self._get_data(kind, ref.get("name"))
                if data is None:
                    if ref.get("optional"):
                        continue
                    raise Wait("CreateContainerConfigError", '%s "%s" not found' % (kind, ref.get("name")))
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    raise Wait("CreateContainerConfigError", "couldn't find key %s in %s %s/%s"
                               % (ref.get("key"), "Secret" if kind == "secret" else "ConfigMap",
                                  self.ns, ref.get("name")))
                env[name] = data[ref["key"]].decode("utf-8", errors="surrogateescape")
            elif "fieldRef" in vf:
                env[name] = self._field(vf["fieldRef"].get("fieldPath"), "%s: env %s" % (what, name))
            else:
                raise Fail("Unsupported", "%s: env %s: valueFrom %s is not supported by the kubelet stand-in"
                           % (what, name, ",".join(sorted(vf))))
        command = [expand(a, env) for a in spec.get("command") or []]
        args = [expand(a, env) for a in spec.get("args") or []]
        if not command:
            raise Fail("Unsupported", "%s has no command: the kubelet stand-in has no image to take an "
                                      "entrypoint from" % what)
        c.argv = [substitute(a, mappings) for a in command + args]
        # Values from Secrets, ConfigMaps and fields are data, not paths of
        # the container: passed as they are (a repository under the host's
        # /tmp must not become the pod's /tmp emptyDir).
        c.env = {k: substitute(v, mappings) if k in literal else v for k, v in env.items()}
        # workingDir: where it maps to (created in a directory volume, as the
        # runtime would), else the per-pod directory.
        c.cwd = self.pod_dir
        wd = norm_container_path(spec.get("workingDir") or "")
        mapped = substitute(wd, mappings) if wd else wd
        if mapped != wd:
            try:
                os.makedirs(mapped, exist_ok=True)
                c.cwd = mapped
            except OSError:
                pass
        single = len(self.main) == 1 and not self.init
        base = "%s_%s" % (self.ns, self.name) if single else "%s_%s_%s" % (self.ns, self.name, c.name)
        c.log_path = os.path.join(self.kubelet.pod_log_dir, base + ".log")

    # ----------------------------------------------------------- running

    def has_processes(self):
        return any(c.running for c in self.init + self.main)

    def kill(self, grace):
        for c in self.init + self.main:
            c.kill(grace)

    def _init_done(self):
        return all(c.final() and c.terminated.get("exitCode") == 0 for c in self.init)

    def step(self):
        """Advance the pod: prepare, start, reap, restart."""
        for c in self.init + self.main:
            c.poll()
        if self.failure or self.deleting:
            return
        spec = self.pod.get("spec") or {}
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(self.start_time)
        if deadline and started is not None and time.time() - started > int(deadline):
            self.fail("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            return
        if not self.prepared:
            try:
                self.prepare()
            except Wait as w:
                for c in self.init + self.main:
                    c.waiting = (w.reason, w.message)
                return
            except Fail as f:
                self.fail(f.reason, f.message)
                return
            for c in self.init:
                c.waiting = ("PodInitializing", "") if c is not self.init[0] else None
            for c in self.main:
                c.waiting = ("PodInitializing", "") if self.init else None
        # Init containers one at a time.
        for c in self.init:
            if c.final() and c.terminated.get("exitCode") == 0:
                continue
            if c.final():  # failed for good
                self.fail("InitContainerFailed", "init container %s exited with %d"
                          % (c.name, c.terminated.get("exitCode")))
                return
            if not c.running and c.next_start is None:
                c.start()
            return
        for c in self.main:
            if c.proc is None and c.terminated is None and c.next_start is None:
                c.start()

    def _grace(self):
        md = self.pod.get("metadata") or {}
        g = md.get("deletionGracePeriodSeconds")
        if g is None:
            g = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return float(30 if g is None else g)

    def phase(self):
        if self.failure:
            return "Failed" if not self.has_processes() else "Running"
        if self.init and not self._init_done():
            return "Pending"
        if self.main and all(c.final() for c in self.main):
            return "Succeeded" if all(c.terminated.get("exitCode") == 0 for c in self.main) else "Failed"
        if self.deleting and not self.has_processes():
            return "Failed"
        if any(c.running or c.terminated or c.restart_count for c in self.main):
            return "Running"
        return "Pending"

    def terminal(self):
        return self.phase() in ("Succeeded", "Failed")

    def _finish_unstarted(self):
        """A failing pod: containers that never ran end as terminated StartError."""
        msg = self.failure[1] if self.failure else "the pod was deleted before the container ran"
        now = now_time()
        for c in self.init + self.main:
            if not c.running and c.terminated is None:
                c.terminated = {"exitCode": 128, "reason": "StartError" if self.failure else "ContainerStatusUnknown",
                                "message": msg, "startedAt": now, "finishedAt": now}
                c.next_start = None
            elif not c.running and c.next_start is not None:
                c.next_start = None

    def _cond(self, ctype, status, reason=None):
        prev = self.transitions.get(ctype)
        if prev is None or prev[0] != status:
            self.transitions[ctype] = (status, now_time())
        cond = {"type": ctype, "status": status, "lastProbeTime": None,
                "lastTransitionTime": self.transitions[ctype][1]}
        if reason:
            cond["reason"] = reason
        return cond

    def status(self):
        phase = self.phase()
        if phase in ("Succeeded", "Failed"):
            self._finish_unstarted()
        terminal = phase in ("Succeeded", "Failed")
        init_done = self._init_done()
        ready = (not terminal and init_done and bool(self.main) and all(c.running for c in self.main))
        not_ready_reason = ("PodCompleted" if phase == "Succeeded" else "PodFailed") if terminal else \
            "ContainersNotReady"
        st = {
            "phase": phase,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": [
                self._cond("PodReadyToStartContainers", "True" if self.prepared and not terminal else "False"),
                self._cond("Initialized", "True" if init_done or (terminal and not self.init) else "False",
                           None if init_done else "ContainersNotInitialized"),
                self._cond("ContainersReady", "True" if ready else "False", None if ready else not_ready_reason),
                self._cond("Ready", "True" if ready else "False", None if ready else not_ready_reason),
                self._cond("PodScheduled", "True"),
            ],
            "containerStatuses": [c.status() for c in self.main],
        }
        if self.init:
            st["initContainerStatuses"] = [c.status() for c in self.init]
        if self.failure and terminal:
            st["reason"], st["message"] = self.failure
        return st

    def sync_status(self, force=False):
        """PATCH pods/status when it changed; returns True when the API has it."""
        st = self.status()
        blob = json.dumps(st, sort_keys=True)
        if blob == self.last_sent and not force:
            return True
        self.kubelet.api.strategic_patch(pod_path(self.ns, self.name, "/status"),
                                         {"metadata": {"uid": self.uid}, "status": st})
        if self.last_sent is None or json.loads(self.last_sent)["phase"] != st["phase"]:
            log("%s: phase %s", self.key, st["phase"])
        self.last_sent = blob
        return True


# ------------------------------------------------------------------- kubelet

class Kubelet:
    def __init__(self, args, api):
        self.args = args
        self.api = api
        self.node_name = args.node_name
        self.state_dir = os.path.abspath(args.state_dir)
        self.pod_log_dir = os.path.join(os.path.abspath(args.log_dir), "pods")
        self.csi_dir = os.path.abspath(args.csi_dir)
        self.prefix = os.environ.get("LIFEBOAT_TEST_IMAGE_PREFIX") or "lifeboat.test/"
        bin_env = os.environ.get("LIFEBOAT_BIN")
        if bin_env:
            self._lifeboat_bin = os.path.abspath(bin_env)
        else:
            target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(args.repo_root, "target")
            self._lifeboat_bin = os.path.join(os.path.abspath(target), "debug", "lifeboat")
        self.runners = {}           # uid -> PodRunner
        self.deleted = {}           # uid -> monotonic time of our last DELETE
        self.skipped = set()        # uids we logged as not ours
        self.recovered = False
        os.makedirs(os.path.join(self.state_dir, "pods"), exist_ok=True)
        os.makedirs(self.pod_log_dir, exist_ok=True)

    def lifeboat_bin(self):
        return self._lifeboat_bin

    def node_env(self, pod_dir):
        env = {"PATH": os.environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": pod_dir, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
               "AWS_EC2_METADATA_DISABLED": "true",
               # kubelet gives every container the address of the `kubernetes`
               # Service; with no Service network here, the API server's own.
               "KUBERNETES_SERVICE_HOST": self.api.host, "KUBERNETES_SERVICE_PORT": str(self.api.port)}
        if self.args.aws_env and os.path.isfile(self.args.aws_env):
            try:
                with open(self.args.aws_env) as f:
                    for line in f:
                        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.rstrip("\n"))
                        if m:
                            env[m.group(1)] = m.group(2)
            except OSError as e:
                log("cannot read %s: %s", self.args.aws_env, e)
            if self.args.aws_region:
                env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.args.aws_region
        return env

    # --------------------------------------------------------- selection

    def images_ours(self, pod):
        spec = pod.get("spec") or {}
        cs = (spec.get("containers") or []) + (spec.get("initContainers") or [])
        return bool(cs) and all((c.get("image") or "").startswith(self.prefix) for c in cs)

    def should_bind(self, pod):
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return False
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
            return False
        if spec.get("schedulingGates"):
            return False
        if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return False
        if not self.images_ours(pod):
            return False
        for k, v in (spec.get("nodeSelector") or {}).items():
            if self.node_labels.get(k) != v:
                uid = pod["metadata"]["uid"]
                if uid not in self.skipped:
                    self.skipped.add(uid)
                    log("%s: nodeSelector %s=%s does not match node %s: not binding it", pod_key(pod), k, v,
                        self.node_name)
                return False
        return True

    def bind(self, pod):
        md = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": md["name"], "namespace": md["namespace"], "uid": md["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name}}
        try:
            self.api.post(pod_path(md["namespace"], md["name"], "/binding"), body)
            log("%s: bound to %s", pod_key(pod), self.node_name)
        except ApiError as e:
            if e.status in (404, 409):
                log("%s: not bound (%s)", pod_key(pod), e)
            else:
                raise

    # ---------------------------------------------------------- deletion

    def delete_pod(self, pod):
        md = pod["metadata"]
        uid = md["uid"]
        last = self.deleted.get(uid)
        if last is not None and time.monotonic() - last < 5:
            return
        try:
            self.api.delete(pod_path(md["namespace"], md["name"]),
                            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                             "preconditions": {"uid": uid}})
            log("%s: deleted (grace 0)", pod_key(pod))
        except ApiError as e:
            if e.status not in (404, 409):
                raise
        self.deleted[uid] = time.monotonic()
        self.forget(uid)

    def forget(self, uid):
        r = self.runners.pop(uid, None)
        if r is not None and r.has_processes():
            r.kill(0)
            for c in r.init + r.main:
                if c.proc is not None:
                    try:
                        c.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                    c.poll()
        shutil.rmtree(os.path.join(self.state_dir, "pods", uid), ignore_errors=True)

    def handle_deleting(self, pod):
        md = pod["metadata"]
        uid = md["uid"]
        phase = (pod.get("status") or {}).get("phase")
        r = self.runners.get(uid)
        if r is not None and r.has_processes():
            if not r.deleting:
                r.deleting = True
                grace = min(r._grace(), KILL_GRACE_CAP_SECONDS)
                log("%s: deleted: stopping its containers (SIGTERM, SIGKILL after %.0fs)", r.key, grace)
                r.kill(grace)
            r.pod = pod
            r.step()
            if r.has_processes():
                return
        if phase not in ("Succeeded", "Failed"):
            try:
                if r is not None:
                    r.deleting = True
                    r.sync_status()
                else:
                    self.patch_failed(pod, "the pod was deleted before the container ran", "ContainerStatusUnknown",
                                      terminated_only=True)
            except ApiError as e:
                log("%s: terminal status before deletion failed (deleting anyway): %s", pod_key(pod), e)
        self.delete_pod(pod)

    def patch_failed(self, pod, message, reason="Error", terminated_only=False, pod_reason=None):
        """Mark a pod this process does not run Failed, its containers terminated."""
        now = now_time()
        st = pod.get("status") or {}
        old = {c.get("name"): c for c in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or [])}

        def cs(c):
            prev = old.get(c["name"]) or {}
            state = prev.get("state") or {}
            if "terminated" in state:
                term = state["terminated"]
            else:
                started = (state.get("running") or {}).get("startedAt") or now
                term = {"exitCode": 137, "reason": reason, "message": message, "startedAt": started,
                        "finishedAt": now}
            out = {"name": c["name"], "image": c.get("image", ""), "imageID": prev.get("imageID", ""),
                   "restartCount": prev.get("restartCount", 0), "ready": False, "started": False,
                   "state": {"terminated": term}}
            if prev.get("containerID"):
                out["containerID"] = prev["containerID"]
            return out

        spec = pod.get("spec") or {}
        status = {"phase": "Failed", "message": message,
                  "conditions": [{"type": t, "status": "False", "reason": "PodFailed", "lastProbeTime": None,
                                  "lastTransitionTime": now} for t in ("ContainersReady", "Ready")],
                  "containerStatuses": [cs(c) for c in spec.get("containers") or []]}
        if pod_reason:
            status["reason"] = pod_reason
        if spec.get("initContainers"):
            status["initContainerStatuses"] = [cs(c) for c in spec["initContainers"]]
        md = pod["metadata"]
        self.api.strategic_patch(pod_path(md["namespace"], md["name"], "/status"),
                                 {"metadata": {"uid": md["uid"]}, "status": status})
        log("%s: marked Failed: %s", pod_key(pod), message)

    # ---------------------------------------------------------- recovery

    def kill_leftovers(self):
        """Processes of an earlier stand-in (pid files under pods/<uid>/)."""
        root = os.path.join(self.state_dir, "pods")
        for uid in os.listdir(root):
            d = os.path.join(root, uid)
            if not os.path.isdir(d):
                continue
            for fn in os.listdir(d):
                if not fn.endswith(".pid"):
                    continue
                try:
                    with open(os.path.join(d, fn)) as f:
                        parts = f.read().split()
                    pid, ticks = int(parts[0]), (parts[1] if len(parts) > 1 else None)
                except (OSError, ValueError, IndexError):
                    continue
                if ticks and process_start_ticks(pid) == ticks:
                    log("killing process group %d left by an earlier stand-in (pod uid %s)", pid, uid)
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                try:
                    os.unlink(os.path.join(d, fn))
                except OSError:
                    pass

    def recover(self, mine):
        self.kill_leftovers()
        for pod in mine:
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Running" and not pod["metadata"].get("deletionTimestamp"):
                try:
                    self.patch_failed(pod, RESTARTED_MESSAGE, pod_reason="KubeletStandInRestarted")
                except ApiError as e:
                    log("%s: %s", pod_key(pod), e)
                    raise

    # -------------------------------------------------------------- loop

    def sync(self):
        mine = self.api.get("/api/v1/pods", {"fieldSelector": "spec.nodeName=" + self.node_name})["items"]
        unscheduled = self.api.get("/api/v1/pods", {"fieldSelector": "spec.nodeName="})["items"]
        if not self.recovered:
            self.recover(mine)
            self.recovered = True
            # Re-read: recovery changed some of them.
            mine = self.api.get("/api/v1/pods", {"fieldSelector": "spec.nodeName=" + self.node_name})["items"]
            try:
                with open(os.path.join(self.state_dir, "ready"), "w") as f:
                    f.write("%d\n" % os.getpid())
            except OSError:
                pass
        for pod in unscheduled:
            try:
                if self.should_bind(pod):
                    self.bind(pod)
            except Exception as e:  # noqa: BLE001 - one pod never stops the others
                log("%s: binding failed (retried): %s", pod_key(pod), e)
        seen = set()
        for pod in mine:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            try:
                self.sync_pod(pod)
            except Exception as e:  # noqa: BLE001
                log("%s: %s (retried next poll)%s", pod_key(pod), e,
                    "" if isinstance(e, ApiError) else "\n" + traceback.format_exc())
        for uid in list(self.runners):
            if uid not in seen:
                log("%s: gone from the API: stopping what is left of it", self.runners[uid].key)
                self.forget(uid)
        for uid in list(self.deleted):
            if uid not in seen and time.monotonic() - self.deleted[uid] > 60:
                del self.deleted[uid]
        # Directories of pods that are gone (also those an earlier stand-in ran).
        root = os.path.join(self.state_dir, "pods")
        for uid in os.listdir(root):
            if uid not in seen and uid not in self.runners:
                shutil.rmtree(os.path.join(root, uid), ignore_errors=True)

    def sync_pod(self, pod):
        md = pod["metadata"]
        uid = md["uid"]
        phase = (pod.get("status") or {}).get("phase")
        if md.get("deletionTimestamp"):
            self.handle_deleting(pod)
            return
        r = self.runners.get(uid)
        if r is None:
            if phase in ("Succeeded", "Failed") or not self.images_ours(pod):
                return
            if phase == "Running":
                # Running, but not ours: an earlier stand-in ran it.
                self.patch_failed(pod, RESTARTED_MESSAGE, pod_reason="KubeletStandInRestarted")
                return
            r = PodRunner(self, pod)
            self.runners[uid] = r
            log("%s: taking it (uid %s)", r.key, uid)
        r.pod = pod
        if r.last_sent is not None and json.loads(r.last_sent)["phase"] in ("Succeeded", "Failed"):
            return  # done; kept until the pod is deleted
        r.step()
        r.sync_status()

    def shutdown(self):
        live = [r for r in self.runners.values() if r.has_processes()]
        for r in live:
            r.fail("KubeletStandInStopped", STOPPED_MESSAGE)
        deadline = time.monotonic() + KILL_GRACE_CAP_SECONDS + 2
        while any(r.has_processes() for r in live) and time.monotonic() < deadline:
            for r in live:
                for c in r.init + r.main:
                    c.poll()
            time.sleep(0.1)
        for r in live:
            try:
                r.sync_status()
            except Exception as e:  # noqa: BLE001
                log("%s: final status not written: %s", r.key, e)

    def run(self):
        while not STOP.is_set():
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - logged, retried at the next poll
                log("poll failed (retried): %s%s", e, "" if isinstance(e, ApiError) else "\n" + traceback.format_exc())
            STOP.wait(POLL_SECONDS)
        log("stopping")
        self.shutdown()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cluster", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--csi-dir", required=True)
    p.add_argument("--aws-env", default="")
    p.add_argument("--aws-region", default="")
    p.add_argument("--node-name", default="lifeboat-test-node")
    p.add_argument("--repo-root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
    args = p.parse_args()

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)

    def on_signal(signum, _frame):
        log("signal %d", signum)
        STOP.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    api = Api(args.server, args.ca, args.cert, args.key)
    kubelet = Kubelet(args, api)
    log("kubelet stand-in for cluster %s: apiserver %s, node %s, image prefix %r, lifeboat binary %s (looked for "
        "at container start), CSI dir %s, aws env %s (region %s)", args.cluster, args.server, args.node_name,
        kubelet.prefix, kubelet.lifeboat_bin(), kubelet.csi_dir, args.aws_env or "-", args.aws_region or "-")

    version = "v0.0.0"
    keeper = None
    while not STOP.is_set():
        try:
            version = (api.get("/version") or {}).get("gitVersion") or version
            keeper = NodeKeeper(api, args.node_name, version + "-lifeboat-stand-in")
            keeper.ensure()
            break
        except Exception as e:  # noqa: BLE001
            log("registering node %s failed (retried in 2s): %s", args.node_name, e)
            STOP.wait(2)
    if keeper is None:
        return 0
    kubelet.node_labels = keeper.labels
    threading.Thread(target=keeper.run, name="node-heartbeat", daemon=True).start()
    kubelet.run()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
