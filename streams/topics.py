"""Topic names, declared once, and their creation.

The contract's topics all share ``RAGSTREAM_TOPIC_PREFIX``. ``ensure_topics`` creates
what is missing (idempotent) so a fresh cluster or the embedded broker just works.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.connection import aiokafka_kwargs, check_connection, describe_kafka_error
from streams.errors import DependencyError
from streams.settings import KafkaSettings

__all__ = ["Topics", "create_topic", "ensure_topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The full names of ragstream's topics."""

    documents: str
    ingest_results: str
    search_requests: str
    dead_letters: str
    breaker_events: str

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> Topics:
        """Names under the configured prefix."""
        return cls(
            documents=kafka.topic("documents"),
            ingest_results=kafka.topic("ingest-results"),
            search_requests=kafka.topic("search-requests"),
            dead_letters=kafka.topic("dead-letters"),
            breaker_events=kafka.topic("breaker-events"),
        )

    def specs(self, kafka: KafkaSettings) -> list[NewTopic]:
        """What ``ensure_topics`` creates: partitioned work topics, compacted events."""
        rf = kafka.replication_factor
        work = [self.documents, self.search_requests]
        out = [NewTopic(t, num_partitions=kafka.partitions, replication_factor=rf) for t in work]
        out += [
            NewTopic(self.ingest_results, num_partitions=kafka.partitions, replication_factor=rf),
            NewTopic(self.dead_letters, num_partitions=1, replication_factor=rf),
            NewTopic(
                self.breaker_events,
                num_partitions=1,
                replication_factor=rf,
                topic_configs={"cleanup.policy": "compact"},
            ),
        ]
        return out


def _raise_topic_errors(response: object) -> None:
    """Per-topic errors come back in the response, not as exceptions."""
    for entry in getattr(response, "topic_errors", None) or getattr(response, "topics", []):
        name, code = entry[0], entry[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            message = entry[2] if len(entry) > 2 else ""
            raise DependencyError(f"cannot create topic {name!r}: error {code} {message}")


async def _create(kafka: KafkaSettings, specs: list[NewTopic]) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(kafka), request_timeout_ms=15_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            try:
                response = await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                return  # another worker or client won the race
            _raise_topic_errors(response)
    except KafkaError as exc:
        raise DependencyError(f"cannot create topics: {describe_kafka_error(exc, kafka)}") from exc
    finally:
        await admin.close()


async def ensure_topics(kafka: KafkaSettings) -> Topics:
    """Check the connection, create the contract's topics where missing; return their names."""
    await check_connection(kafka)
    topics = Topics.from_settings(kafka)
    await _create(kafka, topics.specs(kafka))
    return topics


async def create_topic(kafka: KafkaSettings, name: str, *, partitions: int = 1) -> None:
    """Create one topic (a client's private reply topic) if it is missing."""
    spec = NewTopic(name, num_partitions=partitions, replication_factor=kafka.replication_factor)
    await _create(kafka, [spec])
