"""The human side of the loop: serve predictions to dermatologists most-uncertain-first, pull
their corrections back with provenance, and measure how much they had to correct.

Public face: `ReviewQueue` / `open_queue` (queue.py), the Label Studio implementation
(`labelstudio/`), the server-neutral edit diff and the one correction statistic
(corrections.py), the simulated reviewer (simulate.py) and review status (status.py).
Imports only the core `annotator`.
"""
