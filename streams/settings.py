"""Settings: every knob, read once from the environment, frozen.

Leaf module (imports nothing of ours but errors and ``secret_files``). Each section reads its
own environment variables; secrets are ``SecretStr`` so dumps and logs mask them. Units are
in the names. Every secret also reads ``NAME_FILE``: a path whose content is the value
(the Docker and Kubernetes secrets convention), through ``streams.secret_files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.secret_files import SecretFiles as _SecretFiles
from streams.secret_files import env_name, mask_url

__all__ = [
    "AuthSettings",
    "BreakerSettings",
    "ChromaSettings",
    "DatabaseSettings",
    "ElasticsearchSettings",
    "EmbeddingSettings",
    "IngestSettings",
    "KafkaSettings",
    "KeywordSettings",
    "OpenAISettings",
    "OperationsSettings",
    "SearchSettings",
    "SentrySettings",
    "Settings",
    "default_data_dir",
    "env_name",
    "mask_url",
]


def default_data_dir() -> Path:
    """The dev stack's data dir: ``RAGSTREAM_DATA_DIR`` or ``./.ragstream``."""
    import os

    return Path(os.environ.get("RAGSTREAM_DATA_DIR", ".ragstream")).resolve()


KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]


class KafkaSettings(_SecretFiles):
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
    security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    """How every client talks to the brokers (librdkafka's ``security.protocol``)."""
    sasl_mechanism: KafkaSaslMechanism | None = None
    """Required with ``SASL_*``: ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512`` or
    ``OAUTHBEARER`` (a static token, ``KAFKA_SASL_OAUTHBEARER_TOKEN``)."""
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_oauthbearer_token: SecretStr | None = None
    """The bearer token of ``OAUTHBEARER``; read once at start (restart to rotate it)."""
    ssl_cafile: Path | None = None
    """PEM CA bundle that signed the brokers' certificates (default: the system's CAs)."""
    ssl_certfile: Path | None = None
    """PEM client certificate (mutual TLS); may also hold the key."""
    ssl_keyfile: Path | None = None
    """PEM private key of ``ssl_certfile``."""
    ssl_key_password: SecretStr | None = None
    """Password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: bool = True
    """Check that the broker's certificate names the host connected to (keep it on)."""

    @property
    def uses_ssl(self) -> bool:
        """Whether connections are TLS (``SSL`` or ``SASL_SSL``)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """Whether connections authenticate with SASL."""
        return self.security_protocol.startswith("SASL_")

    @model_validator(mode="after")
    def _security_is_consistent(self) -> KafkaSettings:
        protocol = self.security_protocol
        if not self.uses_ssl:
            given = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n)]
            if given:
                names = ", ".join(f"KAFKA_{n.upper()}" for n in given)
                raise ValueError(
                    f"{names} set but KAFKA_SECURITY_PROTOCOL is {protocol}: "
                    "set it to SSL or SASL_SSL"
                )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE")
        if not self.uses_sasl:
            if self.sasl_username or self.sasl_password or self.sasl_oauthbearer_token:
                raise ValueError(
                    f"KAFKA_SASL_* credentials set but KAFKA_SECURITY_PROTOCOL is {protocol}: "
                    "set it to SASL_SSL (or SASL_PLAINTEXT)"
                )
            return self
        if self.sasl_mechanism is None:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        if self.sasl_mechanism == "OAUTHBEARER":
            if not self.sasl_oauthbearer_token:
                raise ValueError(
                    "KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SASL_OAUTHBEARER_TOKEN"
                )
        elif not self.sasl_username or not self.sasl_password:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM={self.sasl_mechanism} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        return self

    def topic(self, name: str) -> str:
        """The full name of one of ragstream's topics."""
        return f"{self.topic_prefix}.{name}"


class ElasticsearchSettings(_SecretFiles):
    """The keyword store."""

    model_config = SettingsConfigDict(env_prefix="ELASTICSEARCH_", frozen=True, extra="ignore")

    url: str = "http://127.0.0.1:9200"
    """Base URL of the Elasticsearch API (``https://`` for TLS)."""
    cloud_id: str | None = None
    """Elastic Cloud deployment id: used instead of ``url``."""
    index_prefix: str = "ragstream-chunks"
    """Chunks go to the index ``{index_prefix}-v2`` (``-v1`` mapping: ``{index_prefix}``)."""
    api_key: SecretStr | None = None
    """An API key (the base64 ``encoded`` form Elasticsearch returns); or username/password."""
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: Path | None = None
    """PEM CA bundle that signed the server's certificate (default: the system's CAs)."""
    verify_certs: bool = True
    """Verify the server's certificate and host name (keep it on)."""
    timeout_s: float = 10.0
    refresh: bool = False
    """Refresh after each write (tests); production relies on the refresh interval."""

    @model_validator(mode="after")
    def _one_credential(self) -> ElasticsearchSettings:
        if self.api_key and (self.username or self.password):
            raise ValueError(
                "set ELASTICSEARCH_API_KEY or ELASTICSEARCH_USERNAME/PASSWORD, not both"
            )
        if bool(self.username) != bool(self.password):
            raise ValueError("ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD go together")
        return self


class KeywordSettings(BaseSettings):
    """Which keyword store the worker uses: Elasticsearch, or the embedded tantivy index."""

    model_config = SettingsConfigDict(env_prefix="KEYWORD_", frozen=True, extra="ignore")

    store: Literal["elasticsearch", "embedded"] = "elasticsearch"
    """``elasticsearch`` (shared, scales out) or ``embedded`` (tantivy in the data dir: one
    worker per directory; ``ragstream dev`` uses it)."""
    path: Path | None = None
    """Where the embedded index keeps its files (default: ``{data_dir}/keywords``)."""


class ChromaSettings(_SecretFiles):
    """The vector store: embedded and persistent by default, or a Chroma server."""

    model_config = SettingsConfigDict(env_prefix="CHROMA_", frozen=True, extra="ignore")

    url: str = ""
    """Empty: embedded PersistentClient in ``path``; else a Chroma server URL."""
    path: Path | None = None
    """Where the embedded client keeps its data (default: ``{data_dir}/chroma``)."""
    collection_prefix: str = "ragstream"
    """Collections are named ``{prefix}-{model}.t-{tenant}`` (one per tenant) so vectors of two
    models never mix."""
    timeout_s: float = 30.0
    auth_token: SecretStr | None = None
    """Token sent to a Chroma server (or the proxy that authenticates for it)."""
    auth_token_transport_header: Literal["Authorization", "X-Chroma-Token"] = "Authorization"  # noqa: S105 (a header name, not a secret)
    """``Authorization`` sends ``Bearer <token>``; ``X-Chroma-Token`` sends the token as is."""
    ca_certs: Path | None = None
    """PEM CA bundle that signed an ``https://`` server's certificate."""


class DatabaseSettings(_SecretFiles):
    """The SQL catalog."""

    model_config = SettingsConfigDict(env_prefix="DB_", frozen=True, extra="ignore")

    url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL"),
        json_schema_extra={"secret": True},
        repr=False,
    )
    """SQLAlchemy async URL; empty means SQLite in the data dir. TLS: ``?sslmode=verify-full``
    (``require``, ``verify-ca``) and ``&sslrootcert=/ca.pem``, mapped onto asyncpg."""
    pool_size: int = 20
    max_overflow: int = 40
    pool_pre_ping: bool = True
    pool_recycle: int = 3600
    """Seconds after which a pooled connection is replaced."""
    echo: bool = False


class OpenAISettings(_SecretFiles):
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
    """Reciprocal rank fusion's ``k``: a hit at rank r adds ``weight / (k + r)``."""
    max_top_k: int = Field(default=100, ge=1)
    candidates: int = Field(default=100, ge=1)
    """How many hits each leg fetches before fusion (at least top_k; chosen on CISI)."""
    vector_weight: float = Field(default=1.0, ge=0.0)
    """The vector leg's weight in hybrid fusion."""
    keyword_weight: float = Field(default=1.0, ge=0.0)
    """The keyword leg's weight in hybrid fusion (equal weights chosen on CISI: BENCHMARKS.md)."""
    vector_candidates: int | None = Field(default=None, ge=1)
    """Hits the vector leg fetches in hybrid mode (default ``candidates``)."""
    keyword_candidates: int | None = Field(default=None, ge=1)
    """Hits the keyword leg fetches in hybrid mode (default ``candidates``)."""
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
    fleet: Literal["follow", "off"] = "follow"
    """``follow``: a peer's opening opens ours at once, a peer's successful trial ends our wait."""
    heartbeat_s: float = Field(default=30.0, gt=0)
    """Seconds between v2 heartbeats (state restated); readers drop a worker after 3 missed."""
    events_v1: bool = True
    """Also publish the v1 event (key = breaker name); set false once no reader needs it."""


class SentrySettings(_SecretFiles):
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


class AuthSettings(_SecretFiles):
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
    keywords: KeywordSettings = Field(default_factory=KeywordSettings)
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
    def keywords_path(self) -> Path:
        """Where the embedded keyword index keeps its files."""
        return self.keywords.path or self.data_dir / "keywords"

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
        """A dump safe to log: secrets show as ``**********``, URL passwords too."""
        dump = self.model_dump(mode="json")
        dump["database"]["url"] = mask_url(dump["database"]["url"])
        return dump
