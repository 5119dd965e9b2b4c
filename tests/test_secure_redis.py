"""Redis with passwords, ACL users and TLS, against real redis-servers (tests/secure_services.py).

What breaks if these fail: a client of the product that ignores ``STYLESTREAM_REDIS_*`` (the
ScoreStore, ``stylestream scores``/``recs``), TLS that does not verify the server, or a password
that reaches an error line.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from redis.exceptions import AuthenticationError, ResponseError

from streams.config import load_settings
from streams.contract import BehaviorEvent
from streams.security import redis_client_kwargs
from streams.store import ScoreStore
from tests.secure_services import Pki, make_pki, redis_server

ADMIN_PASSWORD = "admin-Pw-5f2e"
APP_PASSWORD = "app-Pw-91c3@:/x"  # characters that need care in a URL
ACL = ("user default on >" + ADMIN_PASSWORD + " ~* &* +@all",
       "user app on >" + APP_PASSWORD + " ~* &* +@all -flushall -flushdb",
       "user reader on >reader-pw ~* &* +@read")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def events(user: str, now: float) -> list[BehaviorEvent]:
    return [BehaviorEvent(event_id=f"{user}-{k}", user_id=user, item_id=f"sku-{k % 3}",
                          behavior=("view", "cart", "purchase")[k % 3], timestamp=now - 60 * k)
            for k in range(6)]


def roundtrip(env: dict[str, str], user: str) -> list[tuple[str, float]]:
    """Apply a batch through the ScoreStore built from ``env``'s settings and read it back."""
    settings = load_settings(env)

    async def run() -> list[tuple[str, float]]:
        store = ScoreStore.from_settings(settings)
        try:
            now = time.time()
            result = await store.apply_batch(events(user, now))
            assert result.applied == 6
            return await store.user_top(user, now)
        finally:
            await store.close()

    return asyncio.run(run())


def test_acl_user_and_password_reach_the_score_store(tmp_path: Path) -> None:
    """STYLESTREAM_REDIS_USERNAME/_PASSWORD authenticate the ScoreStore as an ACL user; the
    same server refuses the wrong password and a user without write rights."""
    with redis_server(tmp_path, acl=ACL) as server:
        env = {"STYLESTREAM_REDIS": server.url, "STYLESTREAM_REDIS_USERNAME": "app",
               "STYLESTREAM_REDIS_PASSWORD": APP_PASSWORD}
        top = roundtrip(env, "acl-shopper")
        assert {item for item, _ in top} == {"sku-0", "sku-1", "sku-2"}
        assert all(score > 0 for _, score in top)
        # the ACL is really in force: the user may not flush, and anonymous access is refused
        client = redis.Redis.from_url(server.url, **redis_client_kwargs(load_settings(env)))
        with pytest.raises(ResponseError, match="(?i)no permissions"):
            client.flushdb()
        with pytest.raises(AuthenticationError):
            redis.Redis.from_url(server.url).ping()
        with pytest.raises(AuthenticationError):
            roundtrip({**env, "STYLESTREAM_REDIS_PASSWORD": "wrong"}, "nobody")
        reader = {"STYLESTREAM_REDIS": server.url, "STYLESTREAM_REDIS_USERNAME": "reader",
                  "STYLESTREAM_REDIS_PASSWORD": "reader-pw"}
        with pytest.raises(ResponseError, match="(?i)no permissions"):
            roundtrip(reader, "reader-shopper")


def test_requirepass_in_the_url(tmp_path: Path) -> None:
    """A ``--requirepass`` server reached with the password in the URL (percent-encoded)."""
    with redis_server(tmp_path, "--requirepass", ADMIN_PASSWORD) as server:
        url = server.url.replace("redis://", f"redis://:{ADMIN_PASSWORD}@")
        top = roundtrip({"STYLESTREAM_REDIS": url}, "url-shopper")
        assert len(top) == 3
        with pytest.raises(AuthenticationError):
            roundtrip({"STYLESTREAM_REDIS": server.url}, "anonymous")


def test_tls_with_client_certificate_and_acl(tmp_path: Path, pki: Pki) -> None:
    """rediss:// + STYLESTREAM_REDIS_CA_FILE/_CERTFILE/_KEYFILE: the ScoreStore works over
    mutual TLS with an ACL user; the server certificate is verified (another CA, or the system
    roots, are refused) and the server refuses a client without a certificate."""
    with redis_server(tmp_path, acl=ACL, tls=pki) as server:
        env = {"STYLESTREAM_REDIS": server.url, "STYLESTREAM_REDIS_CA_FILE": str(pki.ca),
               "STYLESTREAM_REDIS_CERTFILE": str(pki.client_cert),
               "STYLESTREAM_REDIS_KEYFILE": str(pki.client_key),
               "STYLESTREAM_REDIS_USERNAME": "app", "STYLESTREAM_REDIS_PASSWORD": APP_PASSWORD}
        top = roundtrip(env, "tls-shopper")
        assert {item for item, _ in top} == {"sku-0", "sku-1", "sku-2"}
        with pytest.raises(redis.ConnectionError, match="(?i)certificate verify failed"):
            roundtrip({**env, "STYLESTREAM_REDIS_CA_FILE": str(pki.other_ca)}, "x")
        no_ca = {k: v for k, v in env.items() if k != "STYLESTREAM_REDIS_CA_FILE"}
        with pytest.raises(redis.ConnectionError, match="(?i)certificate verify failed"):
            roundtrip(no_ca, "x")
        no_client_cert = {k: v for k, v in env.items()
                          if k not in ("STYLESTREAM_REDIS_CERTFILE", "STYLESTREAM_REDIS_KEYFILE")}
        with pytest.raises(redis.ConnectionError):
            roundtrip(no_client_cert, "x")
        plain = {**env, "STYLESTREAM_REDIS": server.url.replace("rediss://", "redis://")}
        plain.pop("STYLESTREAM_REDIS_CA_FILE")
        plain.pop("STYLESTREAM_REDIS_CERTFILE")
        plain.pop("STYLESTREAM_REDIS_KEYFILE")
        with pytest.raises(redis.ConnectionError):
            roundtrip(plain, "x")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STYLESTREAM_")}
    if "STYLESTREAM_DATA" in os.environ:
        clean["STYLESTREAM_DATA"] = os.environ["STYLESTREAM_DATA"]
    return subprocess.run([sys.executable, "-m", "scripts.cli", *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_cli_reads_scores_over_tls(tmp_path: Path, pki: Pki) -> None:
    """``stylestream scores`` and ``stylestream recs`` honour the TLS and ACL settings."""
    with redis_server(tmp_path, acl=ACL, tls=pki, auth_clients="no") as server:
        env = {"STYLESTREAM_REDIS": server.url, "STYLESTREAM_REDIS_CA_FILE": str(pki.ca),
               "STYLESTREAM_REDIS_USERNAME": "app", "STYLESTREAM_REDIS_PASSWORD": APP_PASSWORD}
        roundtrip(env, "cli-shopper")
        out = cli(env, "scores", "cli-shopper")
        assert out.returncode == 0, out.stderr
        assert set(__import__("json").loads(out.stdout)) == {"sku-0", "sku-1", "sku-2"}
        recs = cli(env, "recs", "cli-shopper")  # reaches the server: "no list yet", not an error
        assert recs.returncode == 1 and "no recommendations" in recs.stderr


def test_secrets_never_reach_error_lines(tmp_path: Path) -> None:
    """A failing connection, and a malformed setting, with a password in the URL: the error
    lines the user sees name the problem but never the password."""
    secret = "Sup3r-secret-Xq"
    with redis_server(tmp_path, "--requirepass", ADMIN_PASSWORD) as server:
        wrong = server.url.replace("redis://", f"redis://app:{secret}@")
        out = cli({"STYLESTREAM_REDIS": wrong}, "-v", "scores", "someone")
        assert out.returncode != 0
        assert "AuthenticationError" in out.stderr or "WRONGPASS" in out.stderr
        assert secret not in out.stderr + out.stdout
    bad = cli({"STYLESTREAM_REDIS": f"http://app:{secret}@127.0.0.1:1/0"}, "scores", "someone")
    assert bad.returncode == 2
    assert "STYLESTREAM_REDIS" in bad.stderr and "app:***@" in bad.stderr
    assert secret not in bad.stderr
    sasl = cli({"STYLESTREAM_KAFKA_SASL_USERNAME": "svc", "STYLESTREAM_KAFKA_SASL_PASSWORD": secret,
                "STYLESTREAM_REDIS": "redis://127.0.0.1:1/0"}, "scores", "someone")
    assert sasl.returncode == 2 and "STYLESTREAM_KAFKA_SECURITY_PROTOCOL" in sasl.stderr
    assert secret not in sasl.stderr


def test_ingest_worker_log_lines_carry_no_password(tmp_path: Path, services) -> None:
    """The Faust ingest worker, given a Redis URL with a wrong password, stops at start with
    one line saying Redis refused the login (exit 77: waiting does not fix a password) — and
    the URL's password appears nowhere in what it prints."""
    from tests.secure_services import ServicesEnv
    from tests.streaming_helpers import running, wait_for

    secret = "Url-secret-8842"
    with redis_server(tmp_path / "redis", "--requirepass", ADMIN_PASSWORD) as server:
        url = server.url.replace("redis://", f"redis://app:{secret}@")
        pair = ServicesEnv({**services.env(), "STYLESTREAM_REDIS": url})
        with running(pair, ["stream"]) as (worker,):
            assert wait_for(lambda: worker.poll() is not None, timeout=60)
        err = worker.stderr.read().decode()
    assert worker.returncode == 77
    assert "Redis at redis://app:***@" in err and "authentication failed" in err  # logged ...
    assert secret not in err  # ... without the password


def test_log_filter_masks_messages_arguments_and_tracebacks() -> None:
    """install_log_redaction masks URL passwords and registered secrets in the message, its
    arguments and the formatted traceback of a real logging handler."""
    import io
    import logging

    from streams.redact import install_log_redaction, register_secret

    stream = io.StringIO()
    logger = logging.getLogger("test-redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    install_log_redaction(logger)
    register_secret("Registered-Pw-1")
    try:
        logger.warning("connecting to %s as %s", "rediss://svc:Pw-in-url-2@db:6380/0",
                       "Registered-Pw-1")
        try:
            raise ConnectionError("refused: redis://:Pw-in-url-3@cache:6379/0")
        except ConnectionError:
            logger.exception("giving up")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "rediss://svc:***@db:6380/0" in text and "redis://:***@cache:6379/0" in text
    assert "giving up" in text and "Traceback" in text
    for secret in ("Pw-in-url-2", "Pw-in-url-3", "Registered-Pw-1"):
        assert secret not in text
