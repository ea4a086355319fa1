"""Ingestion: one parser per digest format (``text``, ``hf_json``) and the service that dedupes, records
files and rejects bad ones (``service``). ``papers`` answers the CLI's questions about stored papers."""

from digest.ingest.report import FileResult, IngestReport
from digest.ingest.service import ingest_bytes, ingest_file, ingest_paths

__all__ = ["FileResult", "IngestReport", "ingest_bytes", "ingest_file", "ingest_paths"]
