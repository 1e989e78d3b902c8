"""Errors the QC log raises on purpose, so callers can tell them from SQLite bugs."""

from __future__ import annotations


class StoreError(Exception):
    """The QC log cannot do what was asked (closed, unreadable file, failed migration)."""


class SchemaTooNewError(StoreError):
    """The database was written by newer station software.

    Opening it with older code could silently misread or corrupt rows, so we refuse.
    """


class BatchError(StoreError):
    """A batch operation conflicts with the batches already in the log."""


class StoreBusyError(StoreError):
    """Another connection held the QC log's write lock longer than the caller could wait."""
