"""The bootstrap loop that composes the stages, round after round: fixed splits, the
pre-annotation engine and its uncertainty score, `run_round` (used by round 0, `retrain
--round N`, the demo and the loop benchmark), finalize, the learning curve and round report.
Imports `annotator`, `training` and `review_queue`; nothing imports it but the CLI shell.
"""
