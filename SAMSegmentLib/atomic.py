"""Output files written all or nothing: the one place that decides how an output reaches its name.

Every file is first written under a unique temporary name in its target folder, checked, flushed
to disk, and only then renamed over the target. Files that belong together (a segmentation and
its PNG, the demo's three files) are staged in one ``OutputSet`` and renamed together once every
one of them was written and checked, so a failure leaves every earlier output as it was.

The temporary name ends with the target's full name (``.partial-<random>.<name>``): writers that
pick the format from the name (SimpleITK, PIL, matplotlib) then write the format the user asked
for. Checks matter because SimpleITK's C++ writers do not report a full disk: they leave an
empty or cut file and return normally.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .errors import SAMSegmentError

TEMPORARY_PREFIX = ".partial-"

Writer = Callable[[Path], object]
"""Writes the file at the path it is given (the temporary one)."""
Check = Callable[[Path], "str | None"]
"""Reads the written temporary file back; returns what is wrong with it, or None."""

# Paths renamed into place while ``recording_writes`` is active (the CLI reports them on Ctrl+C).
_recorded: ContextVar[list[Path] | None] = ContextVar("recorded_writes", default=None)


class OutputError(SAMSegmentError):
    """An output cannot be written where it was asked for (folder, permissions, full disk, bad name)."""


class OutputSet:
    """Files staged under temporary names and renamed into place together by ``commit``."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def write(self, path: str | os.PathLike[str], write: Writer, check: Check | None = None) -> Path:
        """Write ``path``'s content to a fresh temporary file beside it and check it; nothing is renamed yet."""
        final = Path(path)
        _create_folder(final.parent)
        try:
            temporary = _create_temporary(final)
        except OSError as error:
            raise OutputError(f"Cannot write {final}: {_reason(error)}; no output was changed.") from error
        self._staged.append((temporary, final))
        problem = _write_and_check(temporary, write, check)
        if problem is not None:
            self.discard()
            raise OutputError(f"Cannot write {final}: {problem}; no output was changed.")
        return final

    def commit(self) -> list[Path]:
        """Rename every staged file to its name; a failure removes the temporaries not yet renamed."""
        done: list[Path] = []
        recorded = _recorded.get()
        try:
            for temporary, final in self._staged:
                os.replace(temporary, final)
                done.append(final)
                if recorded is not None:
                    recorded.append(final)
        except OSError as error:
            self.discard()
            already = f"; already written: {', '.join(map(str, done))}" if done else "; no output was changed"
            raise OutputError(f"Cannot write {final}: {_reason(error)}{already}.") from error
        self._staged.clear()
        return done

    def discard(self) -> None:
        """Remove the staged temporaries (their targets were never touched)."""
        for temporary, _ in self._staged:
            temporary.unlink(missing_ok=True)
        self._staged.clear()


@contextmanager
def written_together() -> Iterator[OutputSet]:
    """An ``OutputSet`` committed when the block ends, discarded when it raises (Ctrl+C included)."""
    outputs = OutputSet()
    try:
        yield outputs
    except BaseException:
        outputs.discard()
        raise
    outputs.commit()


def write_file(
    path: str | os.PathLike[str], write: Writer, check: Check | None = None, outputs: OutputSet | None = None
) -> Path:
    """Write one file: as part of ``outputs`` (renamed with the set), or on its own at once."""
    if outputs is not None:
        return outputs.write(path, write, check)
    with written_together() as alone:
        alone.write(path, write, check)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, outputs: OutputSet | None = None) -> Path:
    """A text file (JSON reports and the like) written like every other output."""
    # Python's file objects raise on a failed write or close, so the size check in ``write`` suffices.
    return write_file(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), outputs=outputs)


@contextmanager
def recording_writes() -> Iterator[list[Path]]:
    """Collect the paths that outputs are renamed to inside the block (to say truthfully what was written)."""
    written: list[Path] = []
    token = _recorded.set(written)
    try:
        yield written
    finally:
        _recorded.reset(token)


@dataclass(frozen=True)
class PlannedOutput:
    """An output file the user asked for, checked before any work starts."""

    option: str  # how the user named it, e.g. "--png"
    path: Path | None  # None: not asked for
    suffixes: tuple[str, ...] = ()  # the endings this output may have; empty: any


def check_outputs(planned: Sequence[PlannedOutput], inputs: Sequence[Path | None] = ()) -> None:
    """Refuse, before any work, outputs that cannot be written or would overwrite an input or each other.

    Each output's folder, or the nearest existing folder above it (missing folders are created
    when writing), must take new files; the output must not be a folder, an input file (by name
    or as the same file under another name) or another output of the same run.
    """
    seen: dict[Path, str] = {}
    for output in planned:
        if output.path is None:
            continue
        path, option = output.path, output.option
        if output.suffixes and not path.name.lower().endswith(output.suffixes):
            raise OutputError(f"{option} {path}: the name must end with {' or '.join(output.suffixes)}.")
        if path.is_dir():
            raise OutputError(f"{option} {path} is a folder; give a file name in it.")
        for source in inputs:
            if source is not None and _same_file(path, source):
                raise OutputError(f"{option} {path} is the input {source}; writing it would destroy the input.")
        resolved = path.resolve()
        if resolved in seen:
            raise OutputError(f"{option} and {seen[resolved]} are the same file {path}.")
        seen[resolved] = option
        _check_folder(option, path.parent)


def _create_folder(folder: Path) -> None:
    """Create an output's folder (and its parents), or say clearly why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"Cannot create the folder {folder}: {_reason(error)}; no output was changed.") from error


def _check_folder(option: str, folder: Path) -> None:
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:  # the nearest existing folder makes the others
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{option}: {folder} is not a folder.")
    # Try it: permissions alone do not tell (read-only mounts, ACLs, running as root).
    try:
        handle, probe = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=folder)
    except OSError as error:
        raise OutputError(f"{option}: cannot write in the folder {folder}: {_reason(error)}.") from error
    os.close(handle)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # hard links and bind mounts
    except OSError:  # one of them does not exist
        return False


def _create_temporary(final: Path) -> Path:
    """A new, empty file beside ``final`` whose name ends with ``final``'s whole name."""
    while True:
        temporary = final.with_name(f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}.{final.name}")
        try:
            # Exclusive: two writers of one path never share a temporary. Mode 0o666 lets the
            # umask decide, as for a file the writer had created itself.
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary


def _write_and_check(temporary: Path, write: Writer, check: Check | None) -> str | None:
    """What went wrong writing ``temporary``, or None when it is complete and on disk."""
    try:
        write(temporary)
        if temporary.stat().st_size == 0:
            return "the written file is empty (is the disk full?)"
        problem = check(temporary) if check is not None else None
        if problem is None:
            # On disk before the rename: a power cut must not leave an empty file under the name.
            with open(temporary, "rb") as stream:
                os.fsync(stream.fileno())
        return problem
    except (OSError, RuntimeError) as error:  # RuntimeError: SimpleITK's and torch's writers
        return _reason(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__
