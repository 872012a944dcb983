"""Shared fixtures: synthetic volumes, tiny models, the real LiteMedSAM and MobileSAM, the shared CT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from synthetic import make_ct_phantom

from SAMSegmentLib.volume import Volume

DATA_ENV = "SAMSEGMENT_DATA_DIR"
_DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "abdomen-ct"


# Fixtures that bring real weights or the shared data: a test using one is in the slow tier.
SLOW_FIXTURES = frozenset({"litemedsam", "abdomen_ct_dir"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses real weights or the shared data, so ``make test-fast`` can leave them out."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realweights)


@pytest.fixture
def ct_phantom() -> Volume:
    return make_ct_phantom()


@pytest.fixture(scope="session")
def tiny_sam_model():
    from tiny_models import tiny_sam

    return tiny_sam()


@pytest.fixture(scope="session")
def zooming_tiny_model(tiny_sam_model):
    from tiny_models import zooming

    return zooming(tiny_sam_model)


@pytest.fixture(scope="session")
def tiny_hq_model():
    pytest.importorskip("segment_anything_hq")
    from tiny_models import tiny_hq_sam

    return tiny_hq_sam()


@pytest.fixture(scope="session")
def litemedsam():
    """The real embedded LiteMedSAM on the CPU, loaded once per test session."""
    import torch

    from SAMSegmentLib.models import load_model
    from SAMSegmentLib.registry import get_spec

    return load_model(get_spec("litemedsam"), torch.device("cpu"))


@pytest.fixture(scope="session")
def mobile_sam_checkpoint() -> Path:
    """MobileSAM's official checkpoint, shared beside the checkout (SAMSEGMENT_MOBILE_SAM)."""
    from SAMSegmentLib.datasets import MOBILE_SAM_ENV, shared_mobile_sam_checkpoint

    path = shared_mobile_sam_checkpoint()
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"MobileSAM's checkpoint is missing at {path}; set {MOBILE_SAM_ENV}.")
        pytest.skip(f"MobileSAM's checkpoint not found at {path} (set {MOBILE_SAM_ENV})")
    return path


@pytest.fixture(scope="session")
def mobile_sam(mobile_sam_checkpoint):
    """The real MobileSAM on the CPU, loaded once per test session."""
    import torch

    from SAMSegmentLib.models import load_model
    from SAMSegmentLib.registry import get_spec

    return load_model(get_spec("mobile_sam"), torch.device("cpu"), checkpoint=mobile_sam_checkpoint)


@pytest.fixture(scope="session")
def graph_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX graph cache for the whole session: graphs are keyed by their weights, so a model
    exported once (the real LiteMedSAM takes the longest) serves every test that opens it."""
    return tmp_path_factory.mktemp("onnx-graphs")


@pytest.fixture(scope="session")
def abdomen_ct_dir() -> Path:
    path = Path(os.environ.get(DATA_ENV, _DEFAULT_DATA))
    if not (path / "ct.nii.gz").exists():
        if os.environ.get("CI"):
            pytest.fail(f"The shared abdominal CT is missing at {path}; set {DATA_ENV}.")
        pytest.skip(f"shared abdominal CT not found at {path} (set {DATA_ENV})")
    return path


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to a loopback test server go straight to it: a proxy from the environment would
    swallow them, and a mirror setting would redirect them."""
    from SAMSegmentLib.checkpoints import BASE_URL_ENV

    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
