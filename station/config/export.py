"""``[export]`` section: where inspections go after the QC log, and how hard to try.

Sinks are small plugins chosen by ``type`` (``mqtt``, ``http``, ``file``), declared in
``station.toml`` as ``[[export.sinks]]`` tables. Each sink has a unique ``name``: the
outbox keeps one delivery cursor per name, so renaming a sink makes it start over
from the oldest record still in the outbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from station.config.base import Section

_NAME = r"^[A-Za-z0-9_.-]+$"


class _SinkBase(Section):
    """What every sink shares: a name, batch size and retry pacing."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=_NAME,
        description="Unique sink name; the outbox tracks delivery per name.",
    )
    enabled: bool = Field(default=True, description="False keeps the sink configured but idle.")
    batch_size_records: int = Field(
        default=100, ge=1, le=5000, description="Records handed to the sink at a time."
    )
    backoff_initial_s: float = Field(
        default=1.0, gt=0, description="First retry delay after a failure, in seconds."
    )
    backoff_max_s: float = Field(
        default=300.0, gt=0, description="Longest retry delay (exponential, with jitter), s."
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> _SinkBase:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        return self


class MqttSinkConfig(_SinkBase):
    """Publish each inspection to an MQTT broker (QoS 1, persistent session)."""

    type: Literal["mqtt"] = Field(description="Sink plugin: MQTT (paho-mqtt 2).")
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker TCP port (8883 for TLS).")
    topic_prefix: str = Field(
        default="qc",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        description="Topics are <prefix>/<workshop>/<station>/{inspections,status,counts}.",
    )
    client_id: str | None = Field(
        default=None,
        max_length=128,
        description="MQTT client id; default qc-<workshop>-<station> (stable: the broker "
        "keeps the persistent session under it).",
    )
    username: str | None = Field(default=None, description="Broker user name, if required.")
    password: SecretStr | None = Field(default=None, description="Broker password (prefer file).")
    password_file: Path | None = Field(
        default=None, description="File holding the broker password (first line)."
    )
    tls_enabled: bool = Field(default=False, description="Connect with TLS.")
    tls_ca_path: Path | None = Field(
        default=None, description="CA certificate (PEM) to verify the broker; None: system CAs."
    )
    tls_cert_path: Path | None = Field(default=None, description="Client certificate (PEM).")
    tls_key_path: Path | None = Field(default=None, description="Client private key (PEM).")
    tls_insecure: bool = Field(
        default=False, description="Skip the broker host-name check (test benches only)."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive, seconds.")
    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="How long to wait for PUBACKs of one batch, seconds."
    )
    counts_interval_s: float = Field(
        default=5.0, gt=0, description="Period of the retained /counts message, seconds."
    )

    @model_validator(mode="after")
    def _secrets(self) -> MqttSinkConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.tls_cert_path is None) != (self.tls_key_path is None):
            raise ValueError("tls_cert_path and tls_key_path go together")
        return self


class HttpSinkConfig(_SinkBase):
    """POST batches of inspections as JSON to a URL (with an Idempotency-Key)."""

    type: Literal["http"] = Field(description="Sink plugin: HTTP push.")
    url: str = Field(description="Endpoint receiving the POSTs (http:// or https://).")
    timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout, seconds.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. an API key header)."
    )
    bearer_token_file: Path | None = Field(
        default=None, description="File holding a bearer token sent as Authorization."
    )
    tls_ca_path: Path | None = Field(
        default=None, description="CA certificate (PEM) for https; None: system CAs."
    )
    halt_retry_s: float = Field(
        default=600.0,
        gt=0,
        description="After 401/403/404 (a configuration problem), wait this long, seconds, "
        "before trying again; the backlog waits meanwhile.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class FileSinkConfig(_SinkBase):
    """Append JSONL to a file (a USB stick, a synced folder, or tests)."""

    type: Literal["file"] = Field(description="Sink plugin: JSONL file.")
    path: Path = Field(description="JSONL file to append to (created if missing).")


SinkConfig = Annotated[
    MqttSinkConfig | HttpSinkConfig | FileSinkConfig, Field(discriminator="type")
]


class ExportConfig(Section):
    """Store-and-forward of inspections to central systems."""

    sinks: list[SinkConfig] = Field(
        default_factory=list, description="Where inspections go; none: they wait in the outbox."
    )
    outbox_quota_mb: float = Field(
        default=512.0,
        gt=0,
        description="Largest backlog kept for delivery, in MiB (estimated payload size); "
        "beyond it the oldest are dropped from the outbox (not from the log).",
    )
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="How often an idle sink looks for new records, s."
    )
    stats_interval_s: float = Field(
        default=2.0, gt=0, description="How often backlog health and quota are checked, s."
    )

    @model_validator(mode="after")
    def _unique_names(self) -> ExportConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique: {', '.join(dupes)}")
        return self
