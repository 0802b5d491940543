"""The test suite, a package so that its helpers import by name (`from tests.corpus.make_corpus import Obj`)
instead of through sys.path edits; pytest and `python -m benchmarks.NAME` both run from the repository root."""
