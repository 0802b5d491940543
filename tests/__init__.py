"""The test suite, a package so that its helpers import by name (`from tests.corpus.make_corpus import Obj`)
with no edits to the import path; pytest and `python -m benchmarks.NAME` both run from the repository root."""
