"""Tests of the core: boxes, formats, ingest, store, export and the CLI shell."""
