"""Settings: every knob, read once from the environment, frozen.

Leaf module (imports nothing of ours but errors). Each section reads its own environment
variables; secrets are ``SecretStr`` so dumps and logs mask them. Units are in the names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "ChromaSettings",
    "DatabaseSettings",
    "ElasticsearchSettings",
    "EmbeddingSettings",
    "IngestSettings",
    "KafkaSettings",
    "OpenAISettings",
    "OperationsSettings",
    "SearchSettings",
    "SentrySettings",
    "Settings",
    "default_data_dir",
    "describe_settings_error",
    "env_name",
]


def default_data_dir() -> Path:
    """The dev stack's data dir: ``RAGSTREAM_DATA_DIR`` or ``./.ragstream``."""
    import os

    return Path(os.environ.get("RAGSTREAM_DATA_DIR", ".ragstream")).resolve()


class KafkaSettings(BaseSettings):
    """Kafka connection and the topic names (all share one prefix)."""

    # populate_by_name: ``KafkaSettings(topic_prefix=...)`` works (not only its env alias).
    model_config = SettingsConfigDict(
        env_prefix="KAFKA_", frozen=True, extra="ignore", populate_by_name=True
    )

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list."""
    topic_prefix: str = Field(
        default="ragstream", validation_alias=AliasChoices("RAGSTREAM_TOPIC_PREFIX")
    )
    """Prefix of every topic name: ``{prefix}.documents`` and so on."""
    partitions: int = Field(default=4, ge=1)
    """Partitions of the topics ragstream creates itself."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor of the topics ragstream creates itself."""
    fetch_max_wait_ms: int = Field(default=10, ge=1)
    """How long a fetch may wait for data; request-reply latency depends on it."""
    consumer_group: str = "ragstream-worker"
    """The worker's consumer group (the Faust app id)."""
    session_timeout_s: float = 10.0
    """Consumer group session timeout."""
    rebalance_timeout_s: float = 10.0
    """Consumer group rebalance timeout."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest message the worker accepts; larger ones are dead-lettered."""

    def topic(self, name: str) -> str:
        """The full name of one of ragstream's topics."""
        return f"{self.topic_prefix}.{name}"


class ElasticsearchSettings(BaseSettings):
    """The keyword store."""

    model_config = SettingsConfigDict(env_prefix="ELASTICSEARCH_", frozen=True, extra="ignore")

    url: str = "http://127.0.0.1:9200"
    """Base URL of the Elasticsearch API."""
    index_prefix: str = "ragstream-chunks"
    """Chunks go to the index ``{index_prefix}``."""
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = 10.0
    refresh: bool = False
    """Refresh after each write (tests); production relies on the refresh interval."""


class ChromaSettings(BaseSettings):
    """The vector store: embedded and persistent by default, or a Chroma server."""

    model_config = SettingsConfigDict(env_prefix="CHROMA_", frozen=True, extra="ignore")

    url: str = ""
    """Empty: embedded PersistentClient in ``path``; else a Chroma server URL."""
    path: Path | None = None
    """Where the embedded client keeps its data (default: ``{data_dir}/chroma``)."""
    collection_prefix: str = "ragstream"
    """Collections are named ``{prefix}-{model}`` so vectors of two models never mix."""
    timeout_s: float = 30.0


class DatabaseSettings(BaseSettings):
    """The SQL catalog."""

    model_config = SettingsConfigDict(env_prefix="DB_", frozen=True, extra="ignore")

    url: str = Field(default="", validation_alias=AliasChoices("DATABASE_URL"))
    """SQLAlchemy async URL; empty means SQLite in the data dir."""
    pool_size: int = 20
    max_overflow: int = 40
    pool_pre_ping: bool = True
    pool_recycle: int = 3600
    """Seconds after which a pooled connection is replaced."""
    echo: bool = False


class OpenAISettings(BaseSettings):
    """The ``openai`` embedding provider (any OpenAI-compatible server)."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_", frozen=True, extra="ignore")

    api_key: SecretStr | None = None
    base_url: str | None = None
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int | None = None
    """Ask the server for this many dimensions (models that support it)."""
    timeout_s: float = 30.0


class EmbeddingSettings(BaseSettings):
    """Which embedding provider to use and how to batch."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDING_", frozen=True, extra="ignore")

    provider: Literal["local", "openai"] = "local"
    batch_size: int = Field(default=32, ge=1)
    """Chunks per embedding call: one breaker-guarded call, one request to an OpenAI server."""
    model_batch_size: int = Field(default=1, ge=1)
    """Chunks per forward pass of the local model; the int8 model is fastest one at a time."""
    max_tokens: int = Field(default=256, ge=8)
    """The local model truncates each chunk at this many tokens."""
    threads: int = Field(default=0, ge=0)
    """onnxruntime intra-op threads for the local model (0: one per core this process may
    use; a container's CPU quota or affinity mask counts)."""
    spin: bool = True
    """Let the local model's idle threads busy-wait (onnxruntime's default): fastest for one
    worker per host; set false (and ``threads`` = cores / workers) for several per host."""


class IngestSettings(BaseSettings):
    """Chunking and limits of the ingest agent."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", frozen=True, extra="ignore")

    chunk_size: int = Field(default=1000, ge=50)
    """Target chunk length in characters (~200 tokens)."""
    chunk_overlap: int = Field(default=150, ge=0)
    """Characters shared by consecutive chunks."""
    max_text_chars: int = Field(default=1_000_000, ge=1)
    """Longer documents are rejected with ``too_large``."""
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    batch_max: int = Field(default=32, ge=1)
    """At most this many documents-topic messages are processed (and acked) together."""
    batch_within_ms: float = Field(default=20.0, ge=0)
    """A batch is cut this long after its first message, full or not."""

    @model_validator(mode="after")
    def _overlap_fits(self) -> IngestSettings:
        if self.chunk_overlap >= self.chunk_size // 2:
            raise ValueError("INGEST_CHUNK_OVERLAP must be less than half of INGEST_CHUNK_SIZE")
        return self


class SearchSettings(BaseSettings):
    """The search agent."""

    model_config = SettingsConfigDict(env_prefix="SEARCH_", frozen=True, extra="ignore")

    rrf_k: int = Field(default=60, ge=1)
    max_top_k: int = Field(default=100, ge=1)
    candidates: int = Field(default=50, ge=1)
    """How many hits each leg fetches before fusion (at least top_k)."""
    concurrency: int = Field(default=8, ge=1)
    """Search requests processed at once per partition."""
    max_query_chars: int = Field(default=2000, ge=1)


class BreakerSettings(BaseSettings):
    """Circuit breakers in front of each outside dependency."""

    model_config = SettingsConfigDict(env_prefix="BREAKER_", frozen=True, extra="ignore")

    openai_fail_max: int = Field(default=5, ge=1)
    """Consecutive failures that open the embedding breaker (``openai`` or ``embedding``)."""
    openai_reset_timeout_s: float = Field(default=60.0, gt=0)
    """Seconds an open embedding breaker waits before a trial call."""
    openai_call_timeout_s: float = Field(default=120.0, gt=0)
    """Longest one embedding batch may take."""
    vectordb_fail_max: int = Field(default=3, ge=1)
    vectordb_reset_timeout_s: float = Field(default=30.0, gt=0)
    vectordb_call_timeout_s: float = Field(default=30.0, gt=0)
    elasticsearch_fail_max: int = Field(default=3, ge=1)
    elasticsearch_reset_timeout_s: float = Field(default=30.0, gt=0)
    elasticsearch_call_timeout_s: float = Field(default=30.0, gt=0)


class SentrySettings(BaseSettings):
    """Error reporting."""

    model_config = SettingsConfigDict(env_prefix="SENTRY_", frozen=True, extra="ignore")

    dsn: SecretStr | None = None
    environment: str = "development"
    traces_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)


class OperationsSettings(BaseSettings):
    """The worker's HTTP endpoint (health probes, Prometheus metrics)."""

    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_", frozen=True, extra="ignore")

    http_host: str = "127.0.0.1"
    """Address the endpoint binds: loopback by default; ``0.0.0.0`` in a container or pod."""
    http_port: int = Field(default=6066, ge=0, le=65535)
    """Port of ``/health/live``, ``/health/ready`` and ``/metrics``; 0 turns the endpoint off."""
    metrics: bool = True
    """Record Prometheus metrics (``false``: ``/metrics`` answers 404, the probes stay)."""
    metrics_tenant_label: bool = False
    """Add a ``tenant`` label to the document and search counters: one series per tenant."""
    live_stall_s: float = Field(default=10.0, gt=0)
    """``/health/live`` fails when the event loop has not run its heartbeat for this long."""


class AuthSettings(BaseSettings):
    """Who may put messages on the topics: JWTs, API keys, users (see README "Security")."""

    model_config = SettingsConfigDict(
        env_prefix="JWT_", frozen=True, extra="ignore", populate_by_name=True
    )

    mode: Literal["required", "disabled"] = Field(
        default="required", validation_alias=AliasChoices("RAGSTREAM_AUTH")
    )
    """``required``: every document and search message needs a credential (the default)."""
    secret_key: SecretStr | None = None
    """HMAC key of ``HS*`` tokens: >= 32 bytes, not well-known (both enforced in production)."""
    algorithm: Literal[
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384"
    ] = "HS256"
    """Algorithm of the primary key; the only one accepted for it (no ``none``, no confusion)."""
    key_id: str | None = None
    """``kid`` of the primary key; tokens naming another ``kid`` are checked against the JWKS."""
    public_key_file: Path | None = None
    """PEM public key verifying ``RS*``/``PS*``/``ES*`` tokens (the worker needs no private key)."""
    jwks_file: Path | None = None
    """A JWKS file of further keys by ``kid`` (rotation); each key's ``alg`` is pinned."""
    private_key_file: Path | None = None
    """PEM private key used by ``ragstream token``/``login`` to mint asymmetric tokens."""
    expiration_minutes: int = Field(default=30, ge=1)
    """Lifetime of minted access tokens."""
    refresh_expiration_minutes: int = Field(default=7 * 24 * 60, ge=1)
    """Lifetime of refresh tokens (``ragstream login``); each is usable once."""
    issuer: str | None = None
    """When set, tokens must carry this ``iss`` (and minted tokens do)."""
    audience: str | None = None
    """When set, tokens must carry this ``aud`` (and minted tokens do); when unset, tokens
    carrying any ``aud`` are refused."""
    leeway_s: float = Field(default=10.0, ge=0, le=300)
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    bcrypt_rounds: int = Field(
        default=12, ge=4, le=16, validation_alias=AliasChoices("AUTH_BCRYPT_ROUNDS")
    )
    """bcrypt cost of password and API-key hashes."""
    default_admin_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DEFAULT_ADMIN_PASSWORD")
    )
    """When set, the worker creates the first admin user at start (if missing); no default."""
    default_admin_username: str = Field(
        default="admin", validation_alias=AliasChoices("DEFAULT_ADMIN_USERNAME")
    )
    default_admin_tenant: str = Field(
        default="default", validation_alias=AliasChoices("DEFAULT_ADMIN_TENANT")
    )

    @property
    def required(self) -> bool:
        """Whether messages must carry a credential."""
        return self.mode == "required"


class Settings(BaseSettings):
    """Everything, in sections; ``Settings()`` reads the environment."""

    model_config = SettingsConfigDict(env_prefix="RAGSTREAM_", frozen=True, extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    worker_id: str = ""
    """Name of this worker in logs and events (default ``host:pid``)."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    chroma: ChromaSettings = Field(default_factory=ChromaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    sentry: SentrySettings = Field(default_factory=SentrySettings)
    breakers: BreakerSettings = Field(default_factory=BreakerSettings)
    operations: OperationsSettings = Field(default_factory=OperationsSettings)
    # Not "auth": with the RAGSTREAM_ prefix that field would read RAGSTREAM_AUTH (the mode).
    security: AuthSettings = Field(default_factory=AuthSettings)

    @property
    def database_url(self) -> str:
        """The catalog URL, defaulting to a SQLite file in the data dir."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.data_dir / 'catalog.db'}"

    @property
    def chroma_path(self) -> Path:
        """Where the embedded Chroma keeps its files."""
        return self.chroma.path or self.data_dir / "chroma"

    @classmethod
    def _sections(cls) -> list[type[BaseSettings]]:
        """The section classes, in field order."""
        return [
            f.annotation
            for f in cls.model_fields.values()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseSettings)
        ]

    def masked(self) -> dict[str, Any]:
        """A dump safe to log: secrets show as ``**********``."""
        return self.model_dump(mode="json")


def env_name(section: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``section`` (its alias, or prefix + name)."""
    info = section.model_fields.get(field)
    alias = info.validation_alias if info is not None else None
    if isinstance(alias, AliasChoices) and alias.choices and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if isinstance(alias, str):
        return alias
    prefix = str(section.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


_SECTIONS: dict[str, type[BaseSettings]] = {}


def describe_settings_error(exc: Exception) -> str:
    """One line naming the environment variable(s) a settings ``ValidationError`` is about."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    if not _SECTIONS:
        sections: list[type[BaseSettings]] = [Settings, *Settings._sections()]
        _SECTIONS.update({cls.__name__: cls for cls in sections})
    section = _SECTIONS.get(exc.title)
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(x) for x in error.get("loc", ()) if not isinstance(x, int)]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:  # a model validator: its message names the variables itself
            parts.append(message)
            continue
        known = section is not None and loc[0] in section.model_fields
        name = env_name(section, loc[0]) if section is not None and known else loc[0].upper()
        parts.append(f"{name}: {message}")
    return "; ".join(parts)
