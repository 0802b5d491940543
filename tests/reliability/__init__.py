"""Kill, overload and expose the real CLI and Label Studio; helpers shared with benchmarks/crash_safety.py."""
