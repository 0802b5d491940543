"""Tests of the human side against a real local Label Studio."""
