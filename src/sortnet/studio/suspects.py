"""The studio's "Possibly mislabelled" panel: after each training, the images whose label is probably wrong.

After a Train the learner holds every image's features and the L2 strength its CV chose, so out-of-fold
probabilities (sortnet/labels/oof.head_out_of_fold: k folds, one head solve each) and confident learning
(sortnet/labels/find.label_errors_from_probs) take a second or two; the same method as `sortnet check
--labels`. The panel lists the flagged images (most likely wrong first). Only an explicit button press
changes the folder: "move to suggested" calls sortnet/labels/moves.move_to_class (inside DIR, never
overwriting, appended to DIR/.sortnet-moves.jsonl, undone by `sortnet check DIR --undo-moves`); "leave it"
only hides the image from the panel for this session. Only images the panel currently lists can be moved.

Usage:
    panel = SuspectsPanel(folder)
    panel.update_from_training(learner.last, runs=3)       # in the training thread, after the model is saved
    panel.snapshot(); panel.move("cats/studio-1.jpg"); panel.leave("dogs/studio-2.jpg")
"""
from __future__ import annotations

import threading

import numpy as np

from sortnet.studio.folder import StudioError, StudioFolder

MAX_FOLDS = 5
MAX_LISTED = 50  # suspects shown at once (most likely wrong first)


def folds_for(labels: np.ndarray) -> int:
    """k for the out-of-fold predictions: up to MAX_FOLDS, at most the smallest class's count (0: too few)."""
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min()) if len(counts) else 0
    return min(MAX_FOLDS, smallest) if smallest >= 2 else 0


class SuspectsPanel:
    def __init__(self, folder: StudioFolder) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._state: dict = {"state": "none", "runs": 0, "suspects": [], "estimated_errors": 0, "images": 0}
        self._left: set[str] = set()  # paths the person chose to leave (this session)

    def mark_running(self, runs: int) -> None:
        with self._lock:
            self._state = dict(self._state, state="running", runs=runs)

    def update_from_training(self, last, runs: int) -> None:
        """Out-of-fold head probabilities of the last training's features, then the flagged images."""
        from sortnet.labels.oof import fold_ids, head_out_of_fold

        k = folds_for(last.labels)
        if k < 2 or len(last.classes) < 2:
            self.set_error(runs, "every class needs at least 2 images to look for wrong labels")
            return
        fold = fold_ids(last.labels, k, seed=0)
        probs = head_out_of_fold(last.feats, last.labels, len(last.classes), fold, lam=last.lam)
        self.update_from_probs([str(p) for p in last.paths], last.labels, probs, last.classes, runs)

    def update_from_probs(self, paths: list[str], labels: np.ndarray, probs: np.ndarray, classes: list[str],
                          runs: int) -> None:
        """Confident learning on out-of-fold probabilities [N, K] of the images at paths (inside DIR)."""
        from sortnet.labels.find import label_errors_from_probs

        found = label_errors_from_probs(probs, np.asarray(labels, np.int64), paths, classes, self.folder.root)
        rows = [{"path": s.path, "given": s.given, "suggested": s.suggested, "score": round(s.score, 4),
                 "p_suggested": round(s.p_suggested, 4)} for s in found.suspects]
        with self._lock:
            self._state = {"state": "ready", "runs": runs, "suspects": rows,
                           "estimated_errors": found.estimated_errors, "images": found.images}

    def set_error(self, runs: int, message: str) -> None:
        with self._lock:
            self._state = {"state": "error", "runs": runs, "suspects": [], "estimated_errors": 0, "images": 0,
                           "error": message}

    def snapshot(self) -> dict:
        """What the page shows: the listed suspects (not left, still where they were found)."""
        with self._lock:
            state = dict(self._state)
        listed = [s for s in state["suspects"] if s["path"] not in self._left and self._exists(s["path"])]
        state["suspects"] = listed[:MAX_LISTED]
        return state

    def _exists(self, rel: str) -> bool:
        cls, _, name = rel.partition("/")
        try:
            self.folder.image_path(cls, name)
        except StudioError:
            return False
        return True

    def _listed(self, rel: str) -> dict:
        """The suspect row of a path the panel lists now; StudioError for any other path."""
        for s in self.snapshot()["suspects"]:
            if s["path"] == rel:
                return s
        raise StudioError("that image is not in the 'Possibly mislabelled' list (train again to refresh it)")

    def move(self, rel: str) -> dict:
        """Move a listed suspect into its suggested class (logged, undoable); the move as a dict."""
        from sortnet.labels.moves import move_to_class

        s = self._listed(str(rel))
        self.folder.class_dir(s["suggested"])  # still a class of DIR
        move = move_to_class(self.folder.root, s["path"], s["suggested"],
                             reason=f"sortnet studio: possibly mislabelled, score {s['score']}")
        return {"id": move.id, "src": move.src, "dst": move.dst, "to_class": move.to_class}

    def leave(self, rel: str) -> dict:
        """Hide a listed suspect from the panel (nothing changes on disk)."""
        s = self._listed(str(rel))
        self._left.add(s["path"])
        return {"left": s["path"]}
