"""The durable QC log (SQLite): inspections, defects and batches.

Import from here: ``from station.store import QCStore, InspectionRecord``.
"""

from .errors import BatchError, SchemaTooNewError, StoreBusyError, StoreError
from .labelstore import Label
from .qcstore import MAX_PAGE_LIMIT, QCStore, RecordListener
from .queries import InspectionPage
from .records import VERDICTS, Batch, InspectionRecord
from .schema import MIGRATIONS, SCHEMA_VERSION
from .timeutil import Timestamp, to_utc_iso, utc_now_iso

__all__ = [
    "MAX_PAGE_LIMIT",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "VERDICTS",
    "Batch",
    "BatchError",
    "InspectionPage",
    "InspectionRecord",
    "Label",
    "QCStore",
    "RecordListener",
    "SchemaTooNewError",
    "StoreBusyError",
    "StoreError",
    "Timestamp",
    "to_utc_iso",
    "utc_now_iso",
]
