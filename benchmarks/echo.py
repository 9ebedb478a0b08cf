"""The echo baseline of benchmark 2: a bare consumer that answers each request unchanged.

Run as a child process (like the worker) by ``bench_search``:
``python -m benchmarks.echo BOOTSTRAP TOPIC PARTITIONS FETCH_MAX_WAIT_MS``. Reads every partition
of ``TOPIC`` by manual assignment from the end, sends each record's value back to its ``reply-to``
topic with its ``correlation-id``, with the worker's producer settings (acks=all, linger 0), and
prints ``ready`` once it is positioned.
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from schemas.headers import Headers
from streams.connection import aiokafka_kwargs
from streams.settings import KafkaSettings

__all__ = ["positioned", "serve"]


async def positioned(
    bootstrap: str, topic: str, partitions: int, fetch_max_wait_ms: int
) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    """A started producer (the worker's settings: acks=all, linger 0) and a consumer of every
    partition of ``topic`` by manual assignment, positioned at the end."""
    # TLS/SASL from the environment (KAFKA_SECURITY_PROTOCOL, ...), like every client.
    kwargs = aiokafka_kwargs(KafkaSettings(bootstrap_servers=bootstrap))
    producer = AIOKafkaProducer(**kwargs, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        **kwargs,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return producer, consumer


async def serve(bootstrap: str, topic: str, partitions: int, fetch_max_wait_ms: int) -> None:
    """Answer requests until killed."""
    producer, consumer = await positioned(bootstrap, topic, partitions, fetch_max_wait_ms)
    print("ready", flush=True)
    while True:
        batch = await consumer.getmany(timeout_ms=1000)
        sends = []
        for records in batch.values():
            for r in records:
                headers = dict(r.headers or [])
                reply_to = headers.get(Headers.REPLY_TO)
                if not reply_to:
                    continue
                cid = [(Headers.CORRELATION_ID, headers.get(Headers.CORRELATION_ID, b""))]
                sends.append(
                    await producer.send(reply_to.decode(), r.value, key=r.key, headers=cid)
                )
        if sends:
            await asyncio.gather(*sends)


if __name__ == "__main__":
    bootstrap, topic, partitions, wait_ms = sys.argv[1:5]
    asyncio.run(serve(bootstrap, topic, int(partitions), int(wait_ms)))
