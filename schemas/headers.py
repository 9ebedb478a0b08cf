"""Kafka header names of the contract (values are UTF-8 bytes)."""

from __future__ import annotations

__all__ = ["Headers"]


class Headers:
    """Header names; the Spring Kafka ones let a ReplyingKafkaTemplate call search as is."""

    REPLY_TO = "reply-to"
    CORRELATION_ID = "correlation-id"
    SPRING_REPLY_TOPIC = "kafka_replyTopic"
    SPRING_CORRELATION_ID = "kafka_correlationId"
    AUTHORIZATION = "authorization"
    API_KEY = "x-api-key"
    # Added to dead letters:
    ERROR_CODE = "error-code"
    ERROR_MESSAGE = "error-message"
    ORIGINAL_TOPIC = "original-topic"
    ORIGINAL_PARTITION = "original-partition"
    ORIGINAL_OFFSET = "original-offset"
    EXCEPTION_TYPE = "exception-type"
    # Added by ``ragstream dead-letters replay``: ``{dead-letter topic}:{partition}:{offset}``.
    REPLAYED_FROM = "replayed-from"
    # Headers never copied to a dead letter or a log line.
    SECRET = frozenset({AUTHORIZATION, API_KEY})
