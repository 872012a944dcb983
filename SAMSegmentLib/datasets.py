"""Where the shared reference data lives, and reading a reference label volume by structure name."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputImageError
from .imageio import read_labels, read_volume
from .volume import Volume

DATA_DIR_ENV = "SAMSEGMENT_DATA_DIR"
MR_DATA_DIR_ENV = "SAMSEGMENT_MR_DATA_DIR"
MOBILE_SAM_ENV = "SAMSEGMENT_MOBILE_SAM"
# Beside a checkout, as CI and the developers have it.
_DEFAULT_DATA_DIR = Path("..") / "shared" / "data" / "abdomen-ct"
_DEFAULT_MOBILE_SAM = Path("..") / "shared" / "models" / "mobile-sam" / "mobile_sam.pt"


@dataclass
class LabelledCase:
    volume: Volume
    labels: np.ndarray  # [k, j, i] integer labels on the volume grid
    names: dict[int, str]  # every named label value, those absent from ``labels`` included

    def mask(self, structure: str) -> np.ndarray:
        values = [value for value, name in self.names.items() if name == structure]
        if not values:
            raise KeyError(f"No structure '{structure}' in this case; it has: {', '.join(sorted(self.names.values()))}")
        return self.labels == values[0]


@dataclass(frozen=True)
class CaseFiles:
    """Where one labelled case lies: an image (file or DICOM folder), its labels and their names."""

    name: str
    image: Path
    labels: Path
    names_json: Path | None = None

    def load(self) -> LabelledCase:
        return load_labelled_case(self.image, self.labels, self.names_json)

    def structure_names(self) -> set[str]:
        """The names of its structures, read without loading the images when it has a names file."""
        if self.names_json is not None:
            return set(json.loads(Path(self.names_json).read_text()).values())
        return set(self.load().names.values())


# In a case folder: the label image and the names of its values; the image is the other image there.
LABELS_STEM = "labels"
NAMES_FILE = "labels.json"
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def find_case(folder: Path) -> CaseFiles:
    """The case in ``folder``: ``labels.<image suffix>``, optionally ``labels.json``, and one image
    file or one folder of DICOM files beside them."""
    folder = Path(folder)
    labels = [
        folder / f"{LABELS_STEM}{suffix}" for suffix in _IMAGE_SUFFIXES if (folder / f"{LABELS_STEM}{suffix}").is_file()
    ]
    images = [
        p
        for p in sorted(folder.iterdir())
        if p.name.endswith(_IMAGE_SUFFIXES) and not p.name.startswith(LABELS_STEM + ".")
    ]
    images += [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if len(labels) != 1 or len(images) != 1:
        raise InputImageError(
            f"{folder} is not a case folder: it needs one label image named {LABELS_STEM}"
            f"{{{','.join(_IMAGE_SUFFIXES)}}} and one image (a file or a DICOM folder); found labels "
            f"{[p.name for p in labels]} and images {[p.name for p in images]}."
        )
    names = folder / NAMES_FILE
    return CaseFiles(folder.name, images[0], labels[0], names if names.is_file() else None)


def find_cases(dataset: Path) -> list[CaseFiles]:
    """Every case folder in ``dataset`` (its subfolders, in name order)."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise InputImageError(f"{dataset} is not a folder of cases.")
    folders = [p for p in sorted(dataset.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        raise InputImageError(f"{dataset} has no case folders (one subfolder per case).")
    return [find_case(folder) for folder in folders]


def shared_ct_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, _DEFAULT_DATA_DIR))


def shared_mr_dir() -> Path:
    """The shared abdominal MR; by default beside the shared CT."""
    return Path(os.environ.get(MR_DATA_DIR_ENV, shared_ct_dir().parent / "abdomen-mr"))


def shared_mobile_sam_checkpoint() -> Path:
    """MobileSAM's official checkpoint as shared with tests and benchmarks (users download it)."""
    return Path(os.environ.get(MOBILE_SAM_ENV, _DEFAULT_MOBILE_SAM))


def load_labelled_case(image: Path, labels: Path, names_json: Path | None = None) -> LabelledCase:
    volume = read_volume(image)
    label_array = read_labels(labels, volume)
    if names_json is not None:
        names = {int(value): name for value, name in json.loads(Path(names_json).read_text()).items()}
    else:
        names = {int(value): f"label_{int(value)}" for value in np.unique(label_array) if value != 0}
    return LabelledCase(volume, label_array, names)
