"""JSON Schema files generated from the models: the contract for non-Python clients.

``python -m schemas.export`` (or ``ragstream schemas``) rewrites ``schemas/json/``; a
unit test fails when the committed files differ from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from schemas.breaker import BreakerEvent, BreakerEventV2
from schemas.document import DocumentMessage
from schemas.ingest import IngestResult
from schemas.search import SearchRequest, SearchResult

__all__ = ["JSON_DIR", "json_schemas", "write_json_schemas"]

JSON_DIR = Path(__file__).parent / "json"

_MODELS: dict[str, Any] = {
    "ragstream.document.v1": DocumentMessage,
    "ragstream.ingest-result.v1": IngestResult,
    "ragstream.search-request.v1": SearchRequest,
    "ragstream.search-result.v1": SearchResult,
    "ragstream.breaker-event.v1": BreakerEvent,
    "ragstream.breaker-event.v2": BreakerEventV2,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every message type."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in _MODELS.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            schema = model.model_json_schema(by_alias=True, mode="serialization")
        else:
            schema = TypeAdapter(model).json_schema(by_alias=True, mode="serialization")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": name, **schema}
        out[f"{name}.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """Stable text of one schema file."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_json_schemas(directory: Path = JSON_DIR) -> list[Path]:
    """Rewrite every schema file; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, schema in json_schemas().items():
        path = directory / filename
        path.write_text(render(schema))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_json_schemas():
        print(written)
