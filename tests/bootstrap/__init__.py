"""Tests of the bootstrap loop: splits, pre-annotation, uncertainty, rounds and the loop end to end."""
