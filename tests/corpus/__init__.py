"""Hostile input files and the photo-folder helpers the core tests build on."""
