"""Refuse image files whose voxel data is cut short or corrupt.

SimpleITK's NIfTI reader fills voxels missing from a truncated file with zeros and reports
success, so a half-copied ``.nii.gz`` would be segmented as if its lower half were empty.
The other formats it reads (NRRD, MetaImage, DICOM) already raise on short data. This
module checks NIfTI files against their own header: every voxel the header declares must
be in the file, and a gzip stream must end with its end marker and a matching checksum.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import InputImageError

_GZIP_MAGIC = b"\x1f\x8b"
# NIfTI-1 and NIfTI-2 single-file headers: (sizeof_hdr, magic offset, magic).
_NIFTI1 = (348, 344, b"n+1\x00")
_NIFTI2 = (540, 4, b"n+2\x00")
# Decompressing in 4 MiB pieces keeps memory flat on multi-GB volumes.
_READ_CHUNK = 1 << 22


def check_image_complete(path: Path) -> None:
    """Raise InputImageError when ``path`` is a single-file NIfTI (``.nii``, ``.nii.gz``) holding
    fewer voxel bytes than its header declares, or a gzip stream that is cut or corrupt.

    A gzip file is decompressed once to the end: only the end of the stream tells a complete
    file from a truncated one (the cost is a fraction of what reading the image costs).
    """
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            header = stream.read(_NIFTI2[0])
            declared = _nifti_data_end(header)
            if declared is None:
                return  # not single-file NIfTI: SimpleITK's own reader checks the length
            available = len(header)
            while chunk := stream.read(_READ_CHUNK):
                available += len(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise InputImageError(
            f"{path} is truncated or corrupt ({error}); copy or export it again."
        ) from error
    if available < declared:
        raise InputImageError(
            f"{path} is truncated: its header declares {declared} bytes of image data and header, the "
            f"file holds {available}. Copy or export it again."
        )


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
