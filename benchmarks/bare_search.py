"""A search service without Faust, for benchmark 2: what request-reply costs without the framework.

Run as a child process by ``bench_search`` with the worker's environment:
``python -m benchmarks.bare_search TOPIC PARTITIONS``. A plain aiokafka consumer (manual
assignment from the end, the worker's fetch wait) hands each request to the same
``Runtime.searcher`` the worker uses (breakers, tracing and all) and sends the encoded result to
the request's ``reply-to`` with its ``correlation-id``, one request at a time. Prints ``ready``
once positioned. Not a product: no auth, no dead letters, no commits.
"""

from __future__ import annotations

import asyncio
import sys

from ragstream.runtime import Runtime
from schemas.headers import Headers
from streams.codec import decode_search_request, encode
from streams.settings import Settings

from benchmarks.echo import positioned

__all__ = ["serve"]


async def serve(topic: str, partitions: int) -> None:
    """Answer search requests until killed."""
    settings = Settings()
    runtime = Runtime(settings)
    await runtime.start()
    kafka = settings.kafka
    producer, consumer = await positioned(
        kafka.bootstrap_servers, topic, partitions, kafka.fetch_max_wait_ms
    )
    print("ready", flush=True)
    while True:
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            for r in records:
                headers = dict(r.headers or [])
                reply_to, cid = headers.get(Headers.REPLY_TO), headers.get(Headers.CORRELATION_ID)
                if not reply_to or not cid:
                    continue
                request = decode_search_request(r.value, max_bytes=kafka.max_message_bytes)
                result = await runtime.searcher.search(request, correlation_id=cid.decode())
                await producer.send(
                    reply_to.decode(), encode(result), headers=[(Headers.CORRELATION_ID, cid)]
                )


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
