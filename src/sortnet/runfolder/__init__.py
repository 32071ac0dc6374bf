"""The run folder: its file names, run.json, and the lock that makes one run its owner."""
