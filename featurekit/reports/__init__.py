"""Run records (one JSON per run) and, later, reports built from them. Never imports torch."""

from featurekit.reports.run_record import RunRecord, read_run_record, write_run_record

__all__ = ["RunRecord", "read_run_record", "write_run_record"]
