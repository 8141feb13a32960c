#!/usr/bin/env python3
"""Test-only CSI driver for the local test clusters (tests/substrate/clusters).

A stand-in for two real CSI drivers, run out of cluster next to the upstream
csi-provisioner, csi-snapshotter and snapshot-controller. It serves the CSI
Identity, Controller and GroupController services (no Node service: the test
clusters have no kubelet) on a unix socket, and keeps its state in plain files
so that tests can look at a volume's data directly.

Modes (--mode):

  hostpath  driver name hostpath.csi.k8s.io, a stand-in for the upstream
            csi-driver-host-path (which the Go module proxy does not serve).
            A Filesystem volume is a directory, a Block volume a sparse image
            file of the requested size:   <state>/volumes/<volume-id>
            A snapshot is a full copy (`cp -a --sparse=always`):
                                          <state>/snapshots/<snapshot-id>
            Volume and snapshot ids are UUIDs. Volumes from a snapshot or a
            volume (clone) get a copy of its data; a larger Block volume is
            the image grown to the new size. Capacity is the requested size.

  ebs       driver name ebs.csi.aws.com, a stand-in for the AWS EBS CSI driver,
            backed by the EC2 and EBS direct APIs of an AWS endpoint (moto in
            the tests) in --region. Capacity is rounded up to whole GiB, as on
            EBS. Every volume, Filesystem or Block, is a sparse image file of
            that size (a Filesystem request gets the same raw image; nothing
            formats it):                   <state>/volumes/<volume-id>
            The volume id is the id of an EC2 volume created for it (vol-...).
            CreateSnapshot uploads the image's non-zero blocks with
            StartSnapshot / PutSnapshotBlock (SHA256 checksums) /
            CompleteSnapshot; the snapshot id is the EBS snapshot id (snap-...).
            Block size is the one StartSnapshot answers (512 KiB on AWS, 512
            bytes on moto). A volume created from a snapshot reads it back with
            ListSnapshotBlocks / GetSnapshotBlock (checksums verified), so
            snapshots written by anyone through the EBS direct APIs in that
            region can be restored (pre-provisioned VolumeSnapshotContents).
            ListSnapshots by id answers from EC2 DescribeSnapshots, so such
            snapshots are seen as ready once completed.

Adoption, for tests that place data themselves: a hostpath volume or
snapshot whose data (directory or image file) is put under volumes/<id> or
snapshots/<id> without a metadata record is taken as the driver's own on
first use (a static PV with that volumeHandle can be snapshotted; a
pre-provisioned VolumeSnapshotContent with that snapshotHandle can be
restored; size = image size, or the sum of the file sizes of a directory). An
ebs volume id that exists in EC2 (e.g. made by EC2 CreateVolume from a
snapshot, outside Kubernetes, for a static PV) is adopted likewise: its image
is materialized from its source snapshot (or empty) on first use.

Both modes: idempotent by name (CreateVolume, CreateSnapshot,
CreateVolumeGroupSnapshot), deletes of unknown ids succeed, every call is
logged as one line on stderr (the clusters script sends it to the cluster's
logs dir), and a bad request gets a gRPC status, never a crash. Metadata lives
in <state>/meta/{volumes,snapshots,groups}/<id>.json.

Group snapshots (GroupController, CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT): a
group snapshot is one snapshot per volume, taken one after the other (no
crash consistency is emulated), with a group id "group-<uuid>".

Usage:
  driver.py --mode hostpath|ebs --endpoint unix:///path/csi.sock --state-dir DIR
            [--region us-east-1] [--aws-endpoint-url URL] [--cluster NAME]
  (ebs: credentials from the usual AWS_* variables; --aws-endpoint-url
  defaults to $AWS_ENDPOINT_URL; --cluster only tags the EC2 resources)
The generated csi_pb2 / csi_pb2_grpc modules must be on PYTHONPATH (the
tests/substrate/csi-driver/run script prepares them and the venv).
"""

import argparse
import base64
import concurrent.futures
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import grpc
from google.protobuf import timestamp_pb2

import csi_pb2
import csi_pb2_grpc

VERSION = "0.1.0-lifeboat-test"
GIB = 1 << 30
DEFAULT_HOSTPATH_SIZE = 1 << 30
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ZERO_CHUNK = bytes(1 << 20)

log = logging.getLogger("csi")


class CsiError(Exception):
    """A failure with the gRPC status code the caller gets."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(msg):
    return CsiError(grpc.StatusCode.INVALID_ARGUMENT, msg)


def not_found(msg):
    return CsiError(grpc.StatusCode.NOT_FOUND, msg)


def now_ts(seconds=None):
    ts = timestamp_pb2.Timestamp()
    if seconds is None:
        ts.GetCurrentTime()
    else:
        ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def summarize(request):
    """One-line form of a request, without secrets (never raises)."""
    try:
        return _summarize(request)
    except Exception as e:  # logging must not fail a call
        return "<unprintable request: %r>" % e


def _summarize(request):
    parts = []
    for field, value in request.ListFields():
        if field.name == "secrets":
            parts.append("secrets=<%d>" % len(value))
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            text = "{" + ",".join("%s:%s" % (k, v) for k, v in sorted(value.items())) + "}"
        elif isinstance(value, (str, int, float, bool, bytes)):
            text = str(value)
        elif hasattr(value, "ListFields"):
            text = "{" + str(value).replace("\n", " ").strip() + "}"
        else:  # repeated field
            text = "[" + "; ".join(str(v).replace("\n", " ").strip() for v in value) + "]"
        parts.append("%s=%s" % (field.name, text))
    line = " ".join(parts)
    return line if len(line) < 600 else line[:600] + "..."


def rpc(method):
    """Logs the call in one line, maps failures to gRPC status codes."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        start = time.monotonic()
        name = method.__name__
        try:
            response = method(self, request, context)
        except CsiError as e:
            log.info("%s %s -> %s: %s (%.3fs)", name, summarize(request), e.code.name, e.message,
                     time.monotonic() - start)
            context.abort(e.code, e.message)
        except Exception as e:  # never crash the server on a bad request
            log.error("%s %s -> INTERNAL: %r (%.3fs)\n%s", name, summarize(request), e,
                      time.monotonic() - start, traceback.format_exc())
            context.abort(grpc.StatusCode.INTERNAL, "%s: %r" % (name, e))
        log.info("%s %s -> OK (%.3fs)", name, summarize(request), time.monotonic() - start)
        return response

    return wrapper


class Store:
    """JSON metadata files and per-name locks."""

    def __init__(self, root, snapshot_data):
        self.root = root
        self.meta = os.path.join(root, "meta")
        for d in ("volumes", "snapshots", "groups"):
            os.makedirs(os.path.join(self.meta, d), exist_ok=True)
        os.makedirs(os.path.join(root, "volumes"), exist_ok=True)
        if snapshot_data:  # hostpath keeps snapshot data here, ebs in EBS
            os.makedirs(os.path.join(root, "snapshots"), exist_ok=True)
        self._guard = threading.Lock()
        self._locks = {}

    def lock(self, key):
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _path(self, kind, ident):
        if not ID_RE.match(ident or ""):
            raise not_found("malformed %s id %r" % (kind[:-1], ident))
        return os.path.join(self.meta, kind, ident + ".json")

    def get(self, kind, ident):
        try:
            with open(self._path(kind, ident)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def put(self, kind, record):
        path = self._path(kind, record["id"])
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def delete(self, kind, ident):
        try:
            os.unlink(self._path(kind, ident))
        except (FileNotFoundError, CsiError):
            pass

    def all(self, kind):
        out = []
        d = os.path.join(self.meta, kind)
        for n in sorted(os.listdir(d)):
            if n.endswith(".json"):
                try:
                    with open(os.path.join(d, n)) as f:
                        out.append(json.load(f))
                except (OSError, ValueError):
                    continue
        return out

    def by_name(self, kind, name):
        for r in self.all(kind):
            if r.get("name") == name:
                return r
        return None

    def data_path(self, kind, ident):
        if not ID_RE.match(ident or ""):
            raise not_found("malformed id %r" % ident)
        return os.path.join(self.root, kind, ident)


def requested_access_type(caps):
    """'block' or 'filesystem' from volume capabilities; rejects a mix."""
    if not caps:
        raise invalid("volume_capabilities is required")
    kinds = set()
    for c in caps:
        if c.HasField("block"):
            kinds.add("block")
        elif c.HasField("mount"):
            kinds.add("filesystem")
        else:
            raise invalid("a volume capability needs an access type (block or mount)")
        if c.access_mode.mode == csi_pb2.VolumeCapability.AccessMode.UNKNOWN:
            raise invalid("a volume capability needs an access mode")
    if len(kinds) != 1:
        raise invalid("cannot mix block and mount volume capabilities")
    return kinds.pop()


def requested_bytes(capacity_range, default):
    req = capacity_range.required_bytes if capacity_range else 0
    lim = capacity_range.limit_bytes if capacity_range else 0
    if req < 0 or lim < 0:
        raise invalid("negative capacity")
    if lim and req > lim:
        raise invalid("required_bytes %d > limit_bytes %d" % (req, lim))
    size = req or lim or default
    if lim and size > lim:
        raise CsiError(grpc.StatusCode.OUT_OF_RANGE, "size %d is above limit_bytes %d" % (size, lim))
    return size, lim


def run_cp(src, dst):
    res = subprocess.run(["cp", "-a", "--sparse=always", src, dst], capture_output=True, text=True)
    if res.returncode != 0:
        raise CsiError(grpc.StatusCode.INTERNAL, "cp %s %s: %s" % (src, dst, res.stderr.strip()))


def remove_path(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def make_image(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


class Backend:
    """What differs between the modes: where volumes and snapshots come from."""

    name = ""
    supports_clone = False

    def __init__(self, store):
        self.store = store

    def round_size(self, size):
        return size

    def default_size(self):
        return DEFAULT_HOSTPATH_SIZE

    def new_volume_id(self, name, size):
        return str(uuid.uuid4())

    def drop_volume_id(self, vol_id):
        pass

    def adopt_volume(self, vol_id):
        """The record of a volume the driver did not create (a static PV whose
        data a test placed, or an EBS volume made outside Kubernetes), saved
        as if it had created it; None when there is no such volume."""
        return None

    def snapshot_size(self, snap_id):
        """Size of a snapshot in bytes and its access type ('block',
        'filesystem' or None when unknown), or NOT_FOUND."""
        raise NotImplementedError

    def create_snapshot(self, vol, name, parameters):
        raise NotImplementedError

    def delete_snapshot(self, snap_id):
        raise NotImplementedError

    def restore_snapshot(self, snap_id, vol_path, access, size):
        raise NotImplementedError

    def list_snapshots(self):
        """All snapshots this driver can see, as csi Snapshot messages."""
        raise NotImplementedError

    def get_snapshot(self, snap_id):
        """A csi Snapshot message, or None."""
        raise NotImplementedError


def snapshot_message(rec):
    return csi_pb2.Snapshot(
        snapshot_id=rec["id"],
        source_volume_id=rec.get("source_volume_id", ""),
        size_bytes=int(rec.get("size_bytes", 0)),
        creation_time=now_ts(rec.get("created", time.time())),
        ready_to_use=bool(rec.get("ready", True)),
        group_snapshot_id=rec.get("group_snapshot_id", ""),
    )


class HostpathBackend(Backend):
    name = "hostpath.csi.k8s.io"
    supports_clone = True

    def adopt_volume(self, vol_id):
        path = self.store.data_path("volumes", vol_id)
        if not os.path.exists(path):
            return None
        access, size = data_shape(path)
        rec = {"id": vol_id, "name": "", "capacity_bytes": size, "access": access, "path": path,
               "created": os.path.getmtime(path), "source": {}, "parameters": {}, "adopted": True}
        self.store.put("volumes", rec)
        log.info("adopted volume %s (%s, %d bytes) from %s", vol_id, access, size, path)
        return rec

    def snapshot_record(self, snap_id):
        """The snapshot's record; a snapshot directory or image that a test
        placed under snapshots/ without one is adopted."""
        rec = self.store.get("snapshots", snap_id)
        if rec is not None:
            return rec
        path = self.store.data_path("snapshots", snap_id)
        if not os.path.exists(path):
            return None
        access, size = data_shape(path)
        rec = {"id": snap_id, "name": "", "source_volume_id": "", "size_bytes": size, "access": access,
               "created": os.path.getmtime(path), "ready": True, "path": path, "adopted": True}
        self.store.put("snapshots", rec)
        log.info("adopted snapshot %s (%s, %d bytes) from %s", snap_id, access, size, path)
        return rec

    def snapshot_size(self, snap_id):
        rec = self.snapshot_record(snap_id) if ID_RE.match(snap_id or "") else None
        if rec is None:
            raise not_found("snapshot %s not found" % snap_id)
        return rec["size_bytes"], rec.get("access")

    def create_snapshot(self, vol, name, parameters):
        snap_id = str(uuid.uuid4())
        dst = self.store.data_path("snapshots", snap_id)
        run_cp(self.store.data_path("volumes", vol["id"]), dst)
        return {
            "id": snap_id,
            "name": name,
            "source_volume_id": vol["id"],
            "size_bytes": vol["capacity_bytes"],
            "access": vol["access"],
            "created": time.time(),
            "ready": True,
            "path": dst,
        }

    def delete_snapshot(self, snap_id):
        remove_path(self.store.data_path("snapshots", snap_id))

    def restore_snapshot(self, snap_id, vol_path, access, size):
        rec = self.snapshot_record(snap_id)
        if rec is None:
            raise not_found("snapshot %s not found" % snap_id)
        src = self.store.data_path("snapshots", snap_id)
        if not os.path.exists(src):
            raise not_found("snapshot %s has no data at %s" % (snap_id, src))
        copy_volume_data(src, rec.get("access"), vol_path, access, size)

    def list_snapshots(self):
        return [snapshot_message(r) for r in self.store.all("snapshots")]

    def get_snapshot(self, snap_id):
        rec = self.snapshot_record(snap_id)
        return snapshot_message(rec) if rec else None


def data_shape(path):
    """('filesystem', total bytes of its files) for a directory, ('block',
    size) for an image file."""
    if os.path.isdir(path):
        total = 0
        for root, _, files in os.walk(path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
        return "filesystem", total
    return "block", os.path.getsize(path)


def copy_volume_data(src, src_access, dst, access, size):
    if src_access and src_access != access:
        raise invalid("source is a %s volume, the new volume is %s" % (src_access, access))
    run_cp(src, dst)
    if access == "block" and os.path.getsize(dst) < size:
        with open(dst, "r+b") as f:
            f.truncate(size)


class EbsBackend(Backend):
    name = "ebs.csi.aws.com"
    supports_clone = False  # as on EBS

    def __init__(self, store, region, endpoint_url, cluster):
        super().__init__(store)
        import boto3
        from botocore.config import Config

        self.region = region
        self.cluster = cluster
        cfg = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                     read_timeout=60, max_pool_connections=16)
        kw = {"region_name": region, "config": cfg}
        if endpoint_url:
            kw["endpoint_url"] = endpoint_url
        self.ec2 = boto3.client("ec2", **kw)
        self.ebs = boto3.client("ebs", **kw)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)

    def round_size(self, size):
        return max(1, math.ceil(size / GIB)) * GIB

    def default_size(self):
        return GIB

    def new_volume_id(self, name, size):
        res = self.ec2.create_volume(
            AvailabilityZone=self.region + "a",
            Size=size // GIB,
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [
                {"Key": "CSIVolumeName", "Value": name},
                {"Key": "ebs.csi.aws.com/cluster", "Value": "true"},
                {"Key": "lifeboat.test/cluster", "Value": self.cluster},
            ]}],
        )
        return res["VolumeId"]

    def drop_volume_id(self, vol_id):
        from botocore.exceptions import ClientError

        try:
            self.ec2.delete_volume(VolumeId=vol_id)
        except ClientError as e:
            if "NotFound" not in e.response.get("Error", {}).get("Code", ""):
                raise

    def adopt_volume(self, vol_id):
        from botocore.exceptions import ClientError

        if not re.match(r"^vol-[0-9a-f]+$", vol_id or ""):
            return None
        try:
            vols = self.ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"]
        except ClientError as e:
            if "NotFound" in e.response.get("Error", {}).get("Code", ""):
                return None
            raise
        if not vols:
            return None
        size = int(vols[0]["Size"]) * GIB
        source = vols[0].get("SnapshotId") or ""
        path = self.store.data_path("volumes", vol_id)
        if not os.path.exists(path):
            if source and self._describe(source) is not None:
                self.restore_snapshot(source, path, "block", size)
            else:
                make_image(path, size)
        rec = {"id": vol_id, "name": "", "capacity_bytes": size, "access": "block", "path": path,
               "created": time.time(), "source": {"snapshot": source} if source else {},
               "parameters": {}, "adopted": True}
        self.store.put("volumes", rec)
        log.info("adopted EC2 volume %s (%d GiB%s) as %s", vol_id, size // GIB,
                 ", from " + source if source else "", path)
        return rec

    def _describe(self, snap_id):
        from botocore.exceptions import ClientError

        if not re.match(r"^snap-[0-9a-f]+$", snap_id or ""):
            return None
        try:
            snaps = self.ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"]
        except ClientError as e:
            if "NotFound" in e.response.get("Error", {}).get("Code", ""):
                return None
            raise
        return snaps[0] if snaps else None

    def _message(self, snap, rec=None):
        tags = {t["Key"]: t["Value"] for t in snap.get("Tags", [])}
        rec = rec or self.store.get("snapshots", snap["SnapshotId"]) or {}
        src = rec.get("source_volume_id") or tags.get("lifeboat.test/source-volume") or snap.get("VolumeId", "")
        return csi_pb2.Snapshot(
            snapshot_id=snap["SnapshotId"],
            source_volume_id=src,
            size_bytes=int(snap.get("VolumeSize", 1)) * GIB,
            creation_time=now_ts(snap["StartTime"].timestamp()),
            ready_to_use=snap.get("State") == "completed",
            group_snapshot_id=rec.get("group_snapshot_id", ""),
        )

    def snapshot_size(self, snap_id):
        snap = self._describe(snap_id)
        if snap is None:
            raise not_found("EBS snapshot %s not found in %s" % (snap_id, self.region))
        if snap.get("State") != "completed":
            raise CsiError(grpc.StatusCode.UNAVAILABLE,
                           "EBS snapshot %s is %s, not completed" % (snap_id, snap.get("State")))
        return int(snap.get("VolumeSize", 1)) * GIB, None

    def create_snapshot(self, vol, name, parameters):
        path = self.store.data_path("volumes", vol["id"])
        size_gib = vol["capacity_bytes"] // GIB
        tags = [
            {"Key": "CSIVolumeSnapshotName", "Value": name},
            {"Key": "ebs.csi.aws.com/cluster", "Value": "true"},
            {"Key": "lifeboat.test/source-volume", "Value": vol["id"]},
            {"Key": "lifeboat.test/cluster", "Value": self.cluster},
        ]
        started = self.ebs.start_snapshot(VolumeSize=size_gib, Tags=tags,
                                          Description="lifeboat test csi snapshot %s of %s" % (name, vol["id"]),
                                          ClientToken=hashlib.sha256(name.encode()).hexdigest()[:64])
        snap_id = started["SnapshotId"]
        block = int(started.get("BlockSize") or 524288)
        count = 0
        try:
            futures = [self.pool.submit(self._put_block, snap_id, idx, data)
                       for idx, data in nonzero_blocks(path, block)]
            for fut in futures:
                fut.result()
                count += 1
            self.ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=count)
        except Exception:
            try:
                self.ec2.delete_snapshot(SnapshotId=snap_id)
            except Exception:
                pass
            raise
        return {
            "id": snap_id,
            "name": name,
            "source_volume_id": vol["id"],
            "size_bytes": size_gib * GIB,
            "access": vol["access"],
            "created": started["StartTime"].timestamp(),
            "ready": True,
            "region": self.region,
            "block_size": block,
            "blocks": count,
        }

    def _put_block(self, snap_id, idx, data):
        self.ebs.put_snapshot_block(
            SnapshotId=snap_id, BlockIndex=idx, BlockData=data, DataLength=len(data),
            Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
            ChecksumAlgorithm="SHA256")

    def delete_snapshot(self, snap_id):
        from botocore.exceptions import ClientError

        if not re.match(r"^snap-[0-9a-f]+$", snap_id or ""):
            return
        try:
            self.ec2.delete_snapshot(SnapshotId=snap_id)
        except ClientError as e:
            if "NotFound" not in e.response.get("Error", {}).get("Code", ""):
                raise

    def restore_snapshot(self, snap_id, vol_path, access, size):
        blocks = []
        token = None
        block_size = None
        while True:
            kw = {"SnapshotId": snap_id}
            if token:
                kw["NextToken"] = token
            page = self.ebs.list_snapshot_blocks(**kw)
            block_size = int(page.get("BlockSize") or 524288)
            blocks.extend(page.get("Blocks", []))
            token = page.get("NextToken")
            if not token:
                break
        make_image(vol_path, size)
        fd = os.open(vol_path, os.O_WRONLY)
        try:
            futures = [self.pool.submit(self._get_block, snap_id, b) for b in blocks]
            for b, fut in zip(blocks, futures):
                data = fut.result()
                offset = b["BlockIndex"] * block_size
                if offset + len(data) > size:
                    raise CsiError(grpc.StatusCode.OUT_OF_RANGE,
                                   "block %d of %s ends past the volume size %d" % (b["BlockIndex"], snap_id, size))
                os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def _get_block(self, snap_id, b):
        res = self.ebs.get_snapshot_block(SnapshotId=snap_id, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        data = res["BlockData"].read()
        want = res.get("Checksum")
        if want and res.get("ChecksumAlgorithm", "SHA256") == "SHA256":
            got = base64.b64encode(hashlib.sha256(data).digest()).decode()
            if got != want:
                raise CsiError(grpc.StatusCode.DATA_LOSS,
                               "block %d of %s: checksum %s, expected %s" % (b["BlockIndex"], snap_id, got, want))
        return data

    def list_snapshots(self):
        out = []
        token = None
        while True:
            kw = {"OwnerIds": ["self"]}
            if token:
                kw["NextToken"] = token
            page = self.ec2.describe_snapshots(**kw)
            out.extend(self._message(s) for s in page.get("Snapshots", []))
            token = page.get("NextToken")
            if not token:
                break
        return out

    def get_snapshot(self, snap_id):
        snap = self._describe(snap_id)
        return self._message(snap) if snap else None


def nonzero_blocks(path, block):
    """(index, bytes) of every block of the file that is not all zeros,
    skipping holes with SEEK_DATA / SEEK_HOLE."""
    zero_block = bytes(block)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while pos < size:
            try:
                data_start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: only a hole is left
            hole = os.lseek(fd, data_start, os.SEEK_HOLE)
            start = (data_start // block) * block
            end = min(size, -(-hole // block) * block)
            off = start
            while off < end:
                n = min(len(ZERO_CHUNK), end - off)
                chunk = os.pread(fd, n, off)
                if chunk != ZERO_CHUNK[:len(chunk)]:
                    for i in range(0, len(chunk), block):
                        b = chunk[i:i + block]
                        if b != zero_block[:len(b)]:
                            if len(b) < block:
                                b = b + bytes(block - len(b))
                            yield (off + i) // block, b
                off += n
            pos = end
    finally:
        os.close(fd)


class Identity(csi_pb2_grpc.IdentityServicer):
    def __init__(self, backend):
        self.backend = backend

    @rpc
    def GetPluginInfo(self, request, context):
        return csi_pb2.GetPluginInfoResponse(name=self.backend.name, vendor_version=VERSION)

    @rpc
    def GetPluginCapabilities(self, request, context):
        svc = csi_pb2.PluginCapability.Service
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=[
            csi_pb2.PluginCapability(service=svc(type=svc.CONTROLLER_SERVICE)),
            csi_pb2.PluginCapability(service=svc(type=svc.GROUP_CONTROLLER_SERVICE)),
        ])

    @rpc
    def Probe(self, request, context):
        from google.protobuf import wrappers_pb2

        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=True))


class Controller(csi_pb2_grpc.ControllerServicer):
    def __init__(self, backend, store):
        self.backend = backend
        self.store = store

    # ------------------------------------------------------------ volumes
    def _volume_message(self, rec):
        vol = csi_pb2.Volume(volume_id=rec["id"], capacity_bytes=rec["capacity_bytes"],
                             volume_context={"lifeboat.test/access": rec["access"]})
        src = rec.get("source") or {}
        if src.get("snapshot"):
            vol.content_source.snapshot.snapshot_id = src["snapshot"]
        elif src.get("volume"):
            vol.content_source.volume.volume_id = src["volume"]
        return vol

    @rpc
    def CreateVolume(self, request, context):
        if not request.name:
            raise invalid("name is required")
        access = requested_access_type(request.volume_capabilities)
        size, limit = requested_bytes(request.capacity_range if request.HasField("capacity_range") else None,
                                      self.backend.default_size())
        size = self.backend.round_size(size)
        if limit and size > limit:
            raise CsiError(grpc.StatusCode.OUT_OF_RANGE, "size %d rounds up past limit_bytes %d" % (size, limit))
        source = {}
        if request.HasField("volume_content_source"):
            cs = request.volume_content_source
            if cs.HasField("snapshot"):
                source["snapshot"] = cs.snapshot.snapshot_id
            elif cs.HasField("volume"):
                if not self.backend.supports_clone:
                    raise invalid("%s cannot clone volumes" % self.backend.name)
                source["volume"] = cs.volume.volume_id
            else:
                raise invalid("volume_content_source has no snapshot or volume")

        with self.store.lock("volume-name/" + request.name):
            existing = self.store.by_name("volumes", request.name)
            if existing:
                if existing["access"] != access or existing["capacity_bytes"] < size \
                        or (limit and existing["capacity_bytes"] > limit) \
                        or (existing.get("source") or {}) != source:
                    raise CsiError(grpc.StatusCode.ALREADY_EXISTS,
                                   "volume %s exists with other parameters" % request.name)
                return csi_pb2.CreateVolumeResponse(volume=self._volume_message(existing))

            src_access = None
            if "snapshot" in source:
                snap_size, snap_access = self.backend.snapshot_size(source["snapshot"])
                if snap_access and snap_access != access:
                    raise invalid("snapshot %s is of a %s volume, this volume is %s"
                                  % (source["snapshot"], snap_access, access))
                if snap_size > size:
                    if limit and snap_size > limit:
                        raise CsiError(grpc.StatusCode.OUT_OF_RANGE,
                                       "snapshot %s is %d bytes, above limit_bytes" % (source["snapshot"], snap_size))
                    size = self.backend.round_size(snap_size)
            elif "volume" in source:
                src_rec = None
                if ID_RE.match(source["volume"]):
                    src_rec = self.store.get("volumes", source["volume"]) or \
                        self.backend.adopt_volume(source["volume"])
                if src_rec is None:
                    raise not_found("source volume %s not found" % source["volume"])
                src_access = src_rec["access"]
                if src_access != access:
                    raise invalid("source volume is %s, this volume is %s" % (src_access, access))
                size = max(size, src_rec["capacity_bytes"])

            vol_id = self.backend.new_volume_id(request.name, size)
            path = self.store.data_path("volumes", vol_id)
            image = access == "block" or isinstance(self.backend, EbsBackend)
            try:
                remove_path(path)
                if "snapshot" in source:
                    self.backend.restore_snapshot(source["snapshot"], path, "block" if image else access, size)
                elif "volume" in source:
                    copy_volume_data(self.store.data_path("volumes", source["volume"]), src_access, path,
                                     "block" if image else access, size)
                elif image:
                    make_image(path, size)
                else:
                    os.makedirs(path)
            except Exception:
                remove_path(path)
                try:
                    self.backend.drop_volume_id(vol_id)
                except Exception:
                    pass
                raise
            rec = {"id": vol_id, "name": request.name, "capacity_bytes": size, "access": access,
                   "path": path, "created": time.time(), "source": source,
                   "parameters": dict(request.parameters)}
            self.store.put("volumes", rec)
            return csi_pb2.CreateVolumeResponse(volume=self._volume_message(rec))

    @rpc
    def DeleteVolume(self, request, context):
        if not request.volume_id:
            raise invalid("volume_id is required")
        if not ID_RE.match(request.volume_id):
            return csi_pb2.DeleteVolumeResponse()  # cannot exist
        with self.store.lock("volume-id/" + request.volume_id):
            rec = self.store.get("volumes", request.volume_id)
            remove_path(self.store.data_path("volumes", request.volume_id))
            if rec is not None:
                self.backend.drop_volume_id(request.volume_id)
            self.store.delete("volumes", request.volume_id)
        return csi_pb2.DeleteVolumeResponse()

    @rpc
    def ValidateVolumeCapabilities(self, request, context):
        if not request.volume_id:
            raise invalid("volume_id is required")
        rec = None
        if ID_RE.match(request.volume_id):
            rec = self.store.get("volumes", request.volume_id) or self.backend.adopt_volume(request.volume_id)
        if rec is None:
            raise not_found("volume %s not found" % request.volume_id)
        try:
            access = requested_access_type(request.volume_capabilities)
        except CsiError as e:
            if e.code == grpc.StatusCode.INVALID_ARGUMENT and not request.volume_capabilities:
                raise
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=e.message)
        if access != rec["access"]:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(
                message="volume is %s, not %s" % (rec["access"], access))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context, volume_capabilities=request.volume_capabilities,
            parameters=request.parameters)
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    @rpc
    def ControllerGetCapabilities(self, request, context):
        t = csi_pb2.ControllerServiceCapability.RPC
        types = [t.CREATE_DELETE_VOLUME, t.CREATE_DELETE_SNAPSHOT, t.LIST_SNAPSHOTS]
        if self.backend.supports_clone:
            types.append(t.CLONE_VOLUME)
        return csi_pb2.ControllerGetCapabilitiesResponse(capabilities=[
            csi_pb2.ControllerServiceCapability(rpc=t(type=x)) for x in types])

    # ---------------------------------------------------------- snapshots
    def take_snapshot(self, volume_id, name, parameters, group_id=""):
        with self.store.lock("snapshot-name/" + name):
            existing = self.store.by_name("snapshots", name)
            if existing:
                if existing["source_volume_id"] != volume_id:
                    raise CsiError(grpc.StatusCode.ALREADY_EXISTS,
                                   "snapshot %s exists for volume %s" % (name, existing["source_volume_id"]))
                return existing
            if not ID_RE.match(volume_id):
                raise not_found("source volume %s not found" % volume_id)
            with self.store.lock("volume-id/" + volume_id):
                vol = self.store.get("volumes", volume_id) or self.backend.adopt_volume(volume_id)
                if vol is None:
                    raise not_found("source volume %s not found" % volume_id)
                rec = self.backend.create_snapshot(vol, name, dict(parameters))
            rec["group_snapshot_id"] = group_id
            self.store.put("snapshots", rec)
            return rec

    @rpc
    def CreateSnapshot(self, request, context):
        if not request.name:
            raise invalid("name is required")
        if not request.source_volume_id:
            raise invalid("source_volume_id is required")
        rec = self.take_snapshot(request.source_volume_id, request.name, request.parameters)
        return csi_pb2.CreateSnapshotResponse(snapshot=snapshot_message(rec))

    @rpc
    def DeleteSnapshot(self, request, context):
        if not request.snapshot_id:
            raise invalid("snapshot_id is required")
        if not ID_RE.match(request.snapshot_id):
            return csi_pb2.DeleteSnapshotResponse()
        with self.store.lock("snapshot-id/" + request.snapshot_id):
            self.backend.delete_snapshot(request.snapshot_id)
            self.store.delete("snapshots", request.snapshot_id)
        return csi_pb2.DeleteSnapshotResponse()

    @rpc
    def ListSnapshots(self, request, context):
        if request.snapshot_id:
            one = self.backend.get_snapshot(request.snapshot_id) if ID_RE.match(request.snapshot_id) else None
            snaps = [one] if one is not None else []
        else:
            snaps = self.backend.list_snapshots()
        if request.source_volume_id:
            snaps = [s for s in snaps if s.source_volume_id == request.source_volume_id]
        snaps.sort(key=lambda s: s.snapshot_id)
        start = 0
        if request.starting_token:
            try:
                start = int(request.starting_token)
            except ValueError:
                raise CsiError(grpc.StatusCode.ABORTED, "bad starting_token %r" % request.starting_token)
            if start < 0 or start > len(snaps):
                raise CsiError(grpc.StatusCode.ABORTED, "starting_token %d out of range" % start)
        end = len(snaps) if request.max_entries <= 0 else min(len(snaps), start + request.max_entries)
        return csi_pb2.ListSnapshotsResponse(
            entries=[csi_pb2.ListSnapshotsResponse.Entry(snapshot=s) for s in snaps[start:end]],
            next_token=str(end) if end < len(snaps) else "")


class GroupController(csi_pb2_grpc.GroupControllerServicer):
    def __init__(self, controller, store):
        self.controller = controller
        self.store = store

    def _message(self, grp):
        snaps = []
        for sid in grp["snapshot_ids"]:
            rec = self.store.get("snapshots", sid)
            if rec is not None:
                snaps.append(snapshot_message(rec))
        return csi_pb2.VolumeGroupSnapshot(group_snapshot_id=grp["id"], snapshots=snaps,
                                           creation_time=now_ts(grp["created"]), ready_to_use=True)

    @rpc
    def GroupControllerGetCapabilities(self, request, context):
        t = csi_pb2.GroupControllerServiceCapability.RPC
        return csi_pb2.GroupControllerGetCapabilitiesResponse(capabilities=[
            csi_pb2.GroupControllerServiceCapability(rpc=t(type=t.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT))])

    @rpc
    def CreateVolumeGroupSnapshot(self, request, context):
        if not request.name:
            raise invalid("name is required")
        if not request.source_volume_ids:
            raise invalid("source_volume_ids is required")
        with self.store.lock("group-name/" + request.name):
            existing = self.store.by_name("groups", request.name)
            if existing:
                if sorted(existing["source_volume_ids"]) != sorted(request.source_volume_ids):
                    raise CsiError(grpc.StatusCode.ALREADY_EXISTS,
                                   "group snapshot %s exists for other volumes" % request.name)
                return csi_pb2.CreateVolumeGroupSnapshotResponse(group_snapshot=self._message(existing))
            for v in request.source_volume_ids:
                if not ID_RE.match(v) or (self.store.get("volumes", v) is None
                                          and self.controller.backend.adopt_volume(v) is None):
                    raise not_found("source volume %s not found" % v)
            gid = "group-" + str(uuid.uuid4())
            ids = []
            for v in request.source_volume_ids:
                rec = self.controller.take_snapshot(v, "%s-%s" % (request.name, v), request.parameters, gid)
                ids.append(rec["id"])
            grp = {"id": gid, "name": request.name, "source_volume_ids": list(request.source_volume_ids),
                   "snapshot_ids": ids, "created": time.time()}
            self.store.put("groups", grp)
            return csi_pb2.CreateVolumeGroupSnapshotResponse(group_snapshot=self._message(grp))

    @rpc
    def DeleteVolumeGroupSnapshot(self, request, context):
        if not request.group_snapshot_id:
            raise invalid("group_snapshot_id is required")
        grp = self.store.get("groups", request.group_snapshot_id) if ID_RE.match(request.group_snapshot_id) else None
        ids = set(request.snapshot_ids) | set(grp["snapshot_ids"] if grp else [])
        for sid in sorted(ids):
            if ID_RE.match(sid):
                with self.store.lock("snapshot-id/" + sid):
                    self.controller.backend.delete_snapshot(sid)
                    self.store.delete("snapshots", sid)
        if grp:
            self.store.delete("groups", grp["id"])
        return csi_pb2.DeleteVolumeGroupSnapshotResponse()

    @rpc
    def GetVolumeGroupSnapshot(self, request, context):
        if not request.group_snapshot_id:
            raise invalid("group_snapshot_id is required")
        grp = self.store.get("groups", request.group_snapshot_id) if ID_RE.match(request.group_snapshot_id) else None
        if grp is None:
            raise not_found("group snapshot %s not found" % request.group_snapshot_id)
        return csi_pb2.GetVolumeGroupSnapshotResponse(group_snapshot=self._message(grp))


def _unimplemented(name):
    def method(self, request, context):
        raise CsiError(grpc.StatusCode.UNIMPLEMENTED, "%s is not implemented by this test driver" % name)

    method.__name__ = name
    return rpc(method)


# Every method of the services that the classes above do not serve answers
# UNIMPLEMENTED in one log line (the generated defaults log a traceback).
for _cls, _base in ((Identity, csi_pb2_grpc.IdentityServicer), (Controller, csi_pb2_grpc.ControllerServicer),
                    (GroupController, csi_pb2_grpc.GroupControllerServicer)):
    for _name in dir(_base):
        if _name[0].isupper() and _name not in _cls.__dict__:
            setattr(_cls, _name, _unimplemented(_name))


def main():
    p = argparse.ArgumentParser(description="test-only CSI driver (see the module doc)")
    p.add_argument("--mode", choices=["hostpath", "ebs"], required=True)
    p.add_argument("--endpoint", required=True, help="unix:///path/to/csi.sock")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.add_argument("--aws-endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--cluster", default="test")
    args = p.parse_args()

    logging.Formatter.converter = time.gmtime
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, datefmt="%Y-%m-%dT%H:%M:%S",
                        format="%(asctime)s.%(msecs)03dZ " + args.mode + " %(levelname)s %(message)s")
    if not args.endpoint.startswith("unix://"):
        sys.exit("--endpoint must be unix:///path (loopback only: no TCP)")
    sock = args.endpoint[len("unix://"):]
    os.makedirs(os.path.dirname(sock), exist_ok=True)
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass

    store = Store(args.state_dir, snapshot_data=args.mode == "hostpath")
    if args.mode == "hostpath":
        backend = HostpathBackend(store)
    else:
        backend = EbsBackend(store, args.region, args.aws_endpoint_url, args.cluster)

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
    controller = Controller(backend, store)
    csi_pb2_grpc.add_IdentityServicer_to_server(Identity(backend), server)
    csi_pb2_grpc.add_ControllerServicer_to_server(controller, server)
    csi_pb2_grpc.add_GroupControllerServicer_to_server(GroupController(controller, store), server)
    server.add_insecure_port("unix://" + sock)
    server.start()
    log.info("serving %s on %s, state in %s%s", backend.name, sock, args.state_dir,
             " (region %s, endpoint %s)" % (args.region, args.aws_endpoint_url) if args.mode == "ebs" else "")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    server.stop(grace=1).wait()
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    main()
