"""Bulk jobs: from items (``custom_id``, kind, create parameters) to one settled result per
item, with bounded concurrency, one shared rate limit and a durable SQLite state."""

from ._export import export_results
from ._items import BulkItem, BulkResult
from ._job import BulkJob, BulkStats

__all__ = ["BulkItem", "BulkJob", "BulkResult", "BulkStats", "export_results"]
