"""Wrong labels: out-of-fold predictions (oof.py), confident learning (confident.py), suspects (suspects.py,
find.py) and user-requested moves between class folders (moves.py)."""
