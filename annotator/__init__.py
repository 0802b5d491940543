"""The core every stage speaks: records (types.py), box frames and conversions (boxes.py), the
class table, config, errors, photos (images.py), the workspace store (the only writer of
workspace state), ingest, label formats (formats/), synthetic photos; and the CLI shell (cli/),
which sits on top of every package and only parses options and prints.

The core imports nothing from `training`, `review_queue` or `bootstrap`.
"""
