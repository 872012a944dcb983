"""Tell image files whose voxel data is cut short or corrupt from whole ones.

SimpleITK's NIfTI reader fills voxels missing from a truncated file with zeros and reports
success, and it takes a gzip stream cut in its last bytes as whole; its writers leave such a
file on a full disk without an error. So: every voxel a single-file NIfTI's header declares
must be in the file, and a gzip stream (a ``.nii.gz``, or the data of a gzip-encoded NRRD) must
end with its end marker and a matching checksum. Reading checks input files with
``check_image_complete``; writing checks what it wrote with ``image_problem``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import InputImageError

_GZIP_MAGIC = b"\x1f\x8b"
# NIfTI-1 and NIfTI-2 single-file headers: (sizeof_hdr, magic offset, magic).
_NIFTI1 = (348, 344, b"n+1\x00")
_NIFTI2 = (540, 4, b"n+2\x00")
# Decompressing in 4 MiB pieces keeps memory flat on multi-GB volumes.
_READ_CHUNK = 1 << 22


def check_image_complete(path: Path) -> None:
    """Raise InputImageError when the image file at ``path`` is cut short or its compressed data
    are corrupt (see ``image_problem``)."""
    problem = image_problem(path)
    if problem is not None:
        raise InputImageError(f"{path} {problem}; copy or export it again.")


def image_problem(path: Path) -> str | None:
    """Why the image file at ``path`` is cut short or corrupt, or None when it is whole as far as
    its own header and compression tell. A gzip stream is decompressed once to its end: only the
    end tells a complete stream from a truncated one (a fraction of what reading the image costs)."""
    with open(path, "rb") as raw:
        offset = _gzip_offset(raw)
        if offset is None:
            raw.seek(0)
            declared = _nifti_data_end(raw.read(_NIFTI2[0]))
            size = path.stat().st_size
            if declared is not None and size < declared:
                return f"is truncated: its header declares {declared} bytes of header and voxels, the file holds {size}"
            return None
        raw.seek(offset)
        inflater = zlib.decompressobj(wbits=31)  # gzip: the trailer's CRC and length are checked
        head, available = b"", 0
        try:
            while not inflater.eof and (chunk := inflater.unconsumed_tail or raw.read(_READ_CHUNK)):
                data = inflater.decompress(chunk, _READ_CHUNK)  # bounded output: labels compress a thousandfold
                if len(head) < _NIFTI2[0]:
                    head += data[: _NIFTI2[0] - len(head)]
                available += len(data)
            if not inflater.eof:
                available += len(inflater.flush())
        except zlib.error as error:
            return f"has damaged compressed data ({error})"
    if not inflater.eof:
        return "is truncated: its compressed data end early"
    declared = _nifti_data_end(head) if offset == 0 else None
    if declared is not None and available < declared:
        return f"is truncated: its header declares {declared} bytes of header and voxels, the file holds {available}"
    return None


def _gzip_offset(stream: BinaryIO) -> int | None:
    """Where the gzip stream starts: 0 for a gzip file, after the header for a gzip-encoded NRRD;
    None for anything else."""
    head = stream.read(len(_GZIP_MAGIC))
    if head == _GZIP_MAGIC:
        return 0
    if head != b"NR":
        return None
    header = head
    # A NRRD header ends at its first blank line; segment fields make it long (255 segments: ~150 KB).
    while b"\n\n" not in header:
        chunk = stream.read(1 << 16)
        if not chunk:
            return None
        header += chunk
    fields = header[: header.index(b"\n\n") + 1]
    return header.index(b"\n\n") + 2 if b"\nencoding: gzip\n" in fields else None


def _nifti_data_end(header: bytes) -> int | None:
    """Where the voxel data of a single-file NIfTI ends (vox_offset + voxel bytes), or None."""
    for endian in "<>":
        if len(header) >= _NIFTI1[0] and struct.unpack(endian + "i", header[:4])[0] == _NIFTI1[0]:
            if header[_NIFTI1[1] : _NIFTI1[1] + 4] != _NIFTI1[2]:
                return None
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(endian + "f", header[108:112])[0])
            return _data_end(dims, bitpix, vox_offset)
        if len(header) >= _NIFTI2[0] and struct.unpack(endian + "i", header[:4])[0] == _NIFTI2[0]:
            if header[_NIFTI2[1] : _NIFTI2[1] + 4] != _NIFTI2[2]:
                return None
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dims = struct.unpack(endian + "8q", header[16:80])
            vox_offset = struct.unpack(endian + "q", header[168:176])[0]
            return _data_end(dims, bitpix, vox_offset)
    return None


def _data_end(dims: tuple[int, ...], bitpix: int, vox_offset: int) -> int | None:
    rank = dims[0]
    if not 1 <= rank <= 7 or bitpix <= 0 or any(d < 1 for d in dims[1 : rank + 1]):
        return None  # a header this odd is SimpleITK's to refuse
    return vox_offset + int(np.prod(dims[1 : rank + 1], dtype=np.int64)) * bitpix // 8
