"""The ``[export]`` config section: sinks by type, strict keys, documented fields."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import BaseModel, ValidationError

from station.config.export import (
    ExportConfig,
    FileSinkConfig,
    HttpSinkConfig,
    MqttSinkConfig,
)

TOML = """
outbox_quota_mb = 64.0

[[sinks]]
type = "mqtt"
name = "central"
host = "qc.example.org"
port = 8883
username = "atelier-a"
password_file = "/etc/qc/pw"
tls_enabled = true

[[sinks]]
type = "http"
name = "erp"
url = "https://erp.example.org/qc"
headers = { "X-Api-Key" = "k" }
"""


def test_sinks_are_chosen_by_type() -> None:
    cfg = ExportConfig.model_validate(tomllib.loads(TOML))
    assert [type(s) for s in cfg.sinks] == [MqttSinkConfig, HttpSinkConfig]
    assert cfg.sinks[0].batch_size_records == 100
    assert cfg.outbox_quota_mb == 64.0
    assert ExportConfig().sinks == []  # no sinks: records wait in the outbox


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ({"type": "mqtt", "name": "m", "host": "h", "prot": 1}, "Extra inputs"),
        ({"type": "smtp", "name": "x"}, "does not match any of the expected tags"),
        ({"type": "http", "name": "h", "url": "ftp://x"}, "http:// or https://"),
        (
            {"type": "mqtt", "name": "m", "host": "h", "password": "a", "password_file": "/p"},
            "not both",
        ),
        ({"type": "file", "name": "bad name", "path": "/x"}, "pattern"),
        (
            {"type": "file", "name": "f", "path": "/x", "backoff_initial_s": 9, "backoff_max_s": 1},
            ">=",
        ),
    ],
)
def test_bad_sinks_are_refused(sink: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ExportConfig.model_validate({"sinks": [sink]})


def test_sink_names_are_unique() -> None:
    sink = {"type": "file", "name": "a", "path": "/x"}
    with pytest.raises(ValidationError, match="unique"):
        ExportConfig.model_validate({"sinks": [sink, sink]})


@pytest.mark.parametrize("model", [ExportConfig, MqttSinkConfig, HttpSinkConfig, FileSinkConfig])
def test_every_field_is_described(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        assert field.description, f"{model.__name__}.{name} has no description"


def test_password_never_shows_in_dumps() -> None:
    cfg = MqttSinkConfig.model_validate(
        {"type": "mqtt", "name": "m", "host": "h", "password": "s3"}
    )
    assert "s3" not in repr(cfg) and "s3" not in cfg.model_dump_json()
