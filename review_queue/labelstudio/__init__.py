"""The review queue on Label Studio: a local server (server.py), an SDK client with clear errors
(client.py), the project and its storage (project.py), Box <-> region conversion (convert.py),
bulk push and export-based pull."""
