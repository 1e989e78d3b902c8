"""QC log export to central systems: file exports, the publisher and its sinks.

- :mod:`.schema`: the one versioned record every format and sink carries.
- :mod:`.files`: CSV / JSONL / Parquet exports (CLI and API download).
- :mod:`.publisher`: store-and-forward from the outbox to the sinks.
- :mod:`.sinks`: MQTT, HTTP push and file plugins, chosen by ``type``.
- :mod:`.central`: the central consumer (MQTT -> PostgreSQL, idempotent on UUID).
- :mod:`.config`: the ``[export]`` config section.

Nothing heavy is imported here, so ``import station.export`` costs nothing.
"""

from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
