"""Secured connections: the one place that turns ``STYLESTREAM_KAFKA_*`` / ``STYLESTREAM_REDIS_*``
settings into client arguments.

* :func:`kafka_client_kwargs` — for kafka-python (``KafkaProducer``, ``KafkaConsumer``,
  ``KafkaAdminClient``), aiokafka (``AIOKafkaProducer``/``AIOKafkaConsumer``) and Faust
  (``broker_credentials``). TLS goes through one :class:`ssl.SSLContext` built by
  :func:`kafka_ssl_context` (certificate and host name verified; the CA file, when given,
  replaces the system roots; a client certificate when given), so all three behave alike.
* :func:`redis_client_kwargs` — for redis-py (``from_url(url, **kwargs)``, sync or asyncio):
  ACL user/password and the TLS files of a ``rediss://`` URL.

No client in the product builds its own security arguments: each spreads one of these.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from streams.config import KafkaSecurity, Settings

KafkaClient = Literal["kafka-python", "aiokafka", "faust"]


def kafka_ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The client TLS context for ``security`` (``None`` when the protocol has no TLS)."""
    if not security.uses_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=security.ssl_cafile)
    if security.ssl_certfile:
        context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile)
    return context


def kafka_client_kwargs(settings: Settings, client: KafkaClient) -> dict[str, Any]:
    """Keyword arguments that make a ``client`` connect as ``settings.kafka_security`` says.

    ``"kafka-python"`` and ``"aiokafka"``: ``security_protocol``, ``ssl_context`` and the
    ``sasl_*`` arguments (both libraries share these names). ``"faust"``: ``broker_credentials``
    for :class:`faust.App` (absent for PLAINTEXT).
    """
    security = settings.kafka_security
    context = kafka_ssl_context(security)
    if client == "faust":
        import faust

        if security.uses_sasl:
            return {"broker_credentials": faust.SASLCredentials(
                username=security.sasl_username, password=security.sasl_password,
                ssl_context=context, mechanism=security.sasl_mechanism)}
        if context is not None:
            return {"broker_credentials": faust.SSLCredentials(context)}
        return {}
    if client not in ("kafka-python", "aiokafka"):
        raise ValueError(f"unknown Kafka client kind {client!r}")
    kwargs: dict[str, Any] = {"security_protocol": security.protocol}
    if context is not None:
        kwargs["ssl_context"] = context
    if security.uses_sasl:
        kwargs.update(sasl_mechanism=security.sasl_mechanism,
                      sasl_plain_username=security.sasl_username,
                      sasl_plain_password=security.sasl_password)
    return kwargs


def redis_client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for redis-py's ``from_url(settings.redis, **kwargs)``.

    Credentials may instead be in the URL (``redis://user:password@host``); the settings refuse
    both at once. TLS is chosen by the ``rediss://`` scheme; certificates and host names are
    verified (redis-py's defaults), against ``STYLESTREAM_REDIS_CA_FILE`` when given.
    """
    security = settings.redis_security
    kwargs: dict[str, Any] = {}
    if security.password:
        kwargs["password"] = security.password
        if security.username:
            kwargs["username"] = security.username
    if security.ca_file:
        kwargs["ssl_ca_certs"] = security.ca_file
    if security.certfile:
        kwargs["ssl_certfile"] = security.certfile
        if security.keyfile:
            kwargs["ssl_keyfile"] = security.keyfile
    return kwargs
