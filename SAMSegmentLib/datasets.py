"""Where the shared reference data lives, and reading a reference label volume by structure name."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    names: dict[int, str]

    def mask(self, structure: str) -> np.ndarray:
        values = [value for value, name in self.names.items() if name == structure]
        if not values:
            raise KeyError(f"No structure '{structure}' in this case; it has: {', '.join(sorted(self.names.values()))}")
        return self.labels == values[0]


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
    present = set(np.unique(label_array).tolist())
    return LabelledCase(volume, label_array, {v: n for v, n in names.items() if v in present})
