"""The review queue: model pre-annotations go to Label Studio, dermatologists' corrections come back.

server (a local, offline Label Studio) -> push (bulk tasks with predictions, most uncertain first)
-> review in the browser, or simulate (a simulated reviewer) -> pull (reviewed label versions with
their edits) -> status. convert holds the pure conversions; client maps every failure to one message.
"""
