"""The one directory walker for every folder sortnet reads (training, check, evaluate, predict, frame folders).

Rules, each a reason in the skipped list rather than a hang or a surprise:
- each real folder is read once: (st_dev, st_ino) of every folder entered is remembered, so a link
  back to a parent (`ln -s . loop`, `ln -s .. up`) or a second link to a folder is skipped, not followed;
- a symbolic link whose target lies outside the data root is not followed unless follow_links=True;
- only regular files are listed: FIFOs, sockets and devices (also behind links) are skipped from stat,
  never opened; a file above the size cap (sortnet.data.decode.max_file_bytes) is skipped from stat;
- hidden names (".x") are listed as hidden and not entered.

Usage:
    walker = Walker("photos", follow_links=False)
    walker.claim("photos/cat")                  # folders read as a unit (class folders) are claimed first
    files = walker.files("photos/cat")          # regular files under it, sorted, depth first
    dirs = walker.subdirs("photos")             # {name: path} of visible sub-folders
    walker.skipped, walker.hidden               # SkippedFile list (path + reason), hidden paths
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from sortnet.data.dataset import SkippedFile
from sortnet.data.decode import max_file_bytes, not_regular_reason, too_large_reason
from sortnet.textsafe import utf8_name

LOOP_REASON = "folder already read (a symbolic link loop or a second link to the same folder): not followed"


class Walker:
    """Lists folders under one data root by the rules above; collects what it skipped and why."""

    def __init__(self, root: str | os.PathLike, *, follow_links: bool = False, max_bytes: int | None = None):
        self.root = os.path.realpath(os.fspath(Path(root).expanduser()))
        self.follow_links = follow_links
        self.max_bytes = max_file_bytes() if max_bytes is None else int(max_bytes)
        self._seen: set[tuple[int, int]] = set()
        self._skipped: dict[str, SkippedFile] = {}
        self._hidden: dict[str, None] = {}

    @property
    def skipped(self) -> list[SkippedFile]:
        return list(self._skipped.values())

    @property
    def hidden(self) -> list[str]:
        return list(self._hidden)

    def skip(self, path: str, reason: str) -> None:
        self._skipped.setdefault(path, SkippedFile(path, reason))

    def claim(self, folder: str | os.PathLike) -> bool:
        """Mark a folder as read; False when it (the same device + inode) was claimed before."""
        try:
            st = os.stat(folder)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _inside_root(self, target: str) -> bool:
        return target == self.root or target.startswith(self.root.rstrip(os.sep) + os.sep)

    def _classify(self, entry: os.DirEntry) -> tuple[str, os.stat_result | None]:
        """("dir" | "file" | "skip", stat of the target); skip reasons are recorded here."""
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                try:
                    st = os.stat(entry.path)
                except OSError as e:
                    self.skip(entry.path, "symbolic link loop" if e.errno == errno.ELOOP
                              else "dangling symbolic link (target missing)")
                    return "skip", None
                if not self.follow_links and not self._inside_root(target):
                    self.skip(entry.path, f"symbolic link to {target}, outside the data folder: not followed "
                                          "(follow_links / --follow-links reads it)")
                    return "skip", None
            else:
                st = entry.stat(follow_symlinks=False)
        except OSError as e:
            self.skip(entry.path, f"cannot stat ({e.strerror or type(e).__name__})")
            return "skip", None
        if stat.S_ISDIR(st.st_mode):
            return "dir", st
        reason = not_regular_reason(st.st_mode)
        if reason is None and st.st_size > self.max_bytes:
            reason = too_large_reason(st.st_size, self.max_bytes)
        if reason is not None:
            self.skip(entry.path, reason)
            return "skip", None
        return "file", st

    def entries(self, folder: str | os.PathLike) -> tuple[list[str], list[str]]:
        """(visible sub-folder paths, regular file paths) directly in `folder`, each sorted by name."""
        try:
            with os.scandir(folder) as it:
                listed = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.skip(os.fspath(folder), f"cannot list folder ({e.strerror or type(e).__name__})")
            return [], []
        dirs, files = [], []
        for entry in listed:
            if entry.name.startswith("."):
                self._hidden.setdefault(entry.path, None)
                continue
            kind, _ = self._classify(entry)
            if kind == "dir":
                dirs.append(entry.path)
            elif kind == "file":
                files.append(entry.path)
        return dirs, files

    def subdirs(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Visible sub-folders of `folder` by name (links followed by the rules above; not claimed). Names are
        class names: valid UTF-8 (textsafe.utf8_name: bytes that are not UTF-8 as \\xff escapes)."""
        return {utf8_name(os.path.basename(d)): Path(d) for d in self.entries(folder)[0]}

    def files(self, top: str | os.PathLike) -> list[str]:
        """Regular files under `top` (recursively, depth first, sorted per folder); every real folder once.

        `top` itself is entered even when claimed (claim the folders that are read as a unit first);
        any folder below it that was read before is skipped with LOOP_REASON.
        """
        self.claim(top)
        out: list[str] = []
        stack = [os.fspath(top)]
        while stack:
            dirs, files = self.entries(stack.pop())
            out += files
            # real folders are claimed before links to them, so the link is what gets skipped
            entered = {d for d in sorted(dirs, key=os.path.islink) if self.claim(d) or self.skip(d, LOOP_REASON)}
            stack += [d for d in reversed(dirs) if d in entered]
        return out
