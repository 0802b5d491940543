"""Tests of the model side: detector families, metrics and the benchmark."""
