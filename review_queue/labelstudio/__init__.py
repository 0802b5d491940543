"""The review queue on Label Studio: a local server (server.py), an SDK client with clear errors
(client.py), the project and its storage (project.py), Box <-> region conversion (convert.py),
bulk push (push.py) and export-based pull (pull.py). What it pulls is diffed and measured by the
server-neutral `review_queue.corrections`."""
