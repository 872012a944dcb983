"""Guarantees about output files: nothing lost, nothing wrong in silence.

Each test's docstring states one guarantee. The commands run end to end on a phantom with a
tiny random SAM; faults (a full disk, a failing writer, Ctrl+C) are simulated by replacing
the writer, while the checks that must catch them are the real ones.
"""

from __future__ import annotations

import errno
import gzip
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib import atomic
from SAMSegmentLib.atomic import OutputError, write_file
from SAMSegmentLib.cli import main
from SAMSegmentLib.imageio import Segment, write_segmentation
from SAMSegmentLib.research.registration import write_transform
from SAMSegmentLib.research.sitk_images import image_on_grid

pytestmark = pytest.mark.slow  # each runs a command end to end, several seconds on two cores

REAL_WRITE_IMAGE = sitk.WriteImage


@pytest.fixture
def image(tmp_path: Path) -> Path:
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image_on_grid(volume.array, volume), str(path))
    return path


@pytest.fixture
def model_opened(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A tiny random SAM stands in for LiteMedSAM; the list records whether a model was opened."""
    from tiny_models import tiny_sam

    opened: list[bool] = []

    def open_tiny(args: object) -> object:
        opened.append(True)
        return tiny_sam()

    monkeypatch.setattr("SAMSegmentLib.cli.common.open_model", open_tiny)
    return opened


def segment(image: Path, output: Path, *extra: str | Path) -> int:
    return main(["segment", "--image", str(image), "--slice", "6", "--box", "10,10,40,30",
                 "--output", str(output), *map(str, extra)])  # fmt: skip


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.rglob("*") if "partial" in path.name)


def cut_writer(keep: float) -> Callable[..., None]:
    """SimpleITK's writer on a disk that fills up: it returns normally and leaves ``keep`` of the file."""

    def write(image: sitk.Image, path: str, *args: object, **kwargs: object) -> None:
        REAL_WRITE_IMAGE(image, path, *args, **kwargs)
        size = os.path.getsize(path)
        os.truncate(path, int(size * keep) if keep < 1 else size - 6)

    return write


@pytest.mark.parametrize("keep", [0.0, 0.5, 1.0], ids=["empty", "half", "last-bytes"])
def test_a_full_disk_leaves_the_earlier_output_as_it_was_and_says_why(
    image, model_opened, tmp_path, monkeypatch, capsys, keep
):
    """A write the disk could not hold (an empty file, half a file, a file short of its last bytes)
    is found before it replaces anything: the earlier output stays byte for byte, the command
    fails with a reason, and no temporary file is left."""
    output = tmp_path / "out.seg.nrrd"
    assert segment(image, output) == 0
    before = output.read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(sitk, "WriteImage", cut_writer(keep))
    assert segment(image, output) == 2
    error = capsys.readouterr().err
    assert error.startswith("samsegment: error: Cannot write") and "no output was changed" in error
    assert output.read_bytes() == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".seg.nrrd", ".nrrd", ".nii", ".nii.gz"])
def test_the_format_written_is_the_one_the_name_asks_for(image, model_opened, tmp_path, suffix):
    """``--output x.nii.gz`` holds gzipped NIfTI, ``x.nii`` NIfTI, ``x.nrrd`` and ``x.seg.nrrd`` NRRD,
    each read back as the segmentation."""
    output = tmp_path / f"out{suffix}"
    assert segment(image, output) == 0
    data = output.read_bytes()
    if suffix == ".nii.gz":
        data = gzip.decompress(data)
    is_nifti = data[344:348] == b"n+1\0"
    assert is_nifti == (".nii" in suffix) and data.startswith(b"NRRD") == (".nrrd" in suffix)
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))
    assert labels.shape == (12, 48, 64) and labels[6].any()


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
def test_an_output_that_is_the_input_is_refused_before_any_work(image, model_opened, tmp_path, capsys, how):
    """An output naming the input image (directly or through a link) is refused before the model
    loads, and the input is left as it was."""
    before = image.read_bytes()
    output = image
    if how != "same path":
        output = tmp_path / "alias.nrrd"
        (output.symlink_to if how == "symbolic link" else output.hardlink_to)(image)
    assert segment(image, output) == 2
    assert "is the input" in capsys.readouterr().err
    assert image.read_bytes() == before and not model_opened


def test_names_that_cannot_be_written_are_refused_before_any_work(image, model_opened, tmp_path, capsys):
    """A folder as output, a name in no known format, a file standing where a folder should be, and
    the same file asked for twice are refused before the model loads, with a message, not a traceback."""
    (tmp_path / "a_file").write_text("")
    cases = {
        "folder": (tmp_path, ()),
        "format": (tmp_path / "out.mha", ()),
        "file as folder": (tmp_path / "a_file" / "out.seg.nrrd", ()),
        "png folder": (tmp_path / "out.seg.nrrd", ("--png", tmp_path)),
        "png format": (tmp_path / "out.seg.nrrd", ("--png", tmp_path / "out.jpg")),
        "png in file": (tmp_path / "out.seg.nrrd", ("--png", tmp_path / "a_file" / "x.png")),
    }
    for name, (output, extra) in cases.items():
        assert segment(image, output, *extra) == 2, name
        assert capsys.readouterr().err.startswith("samsegment: error: "), name
    assert not model_opened
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "ct.nrrd"]


@pytest.fixture
def read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder no file can be created in. As root, where permissions do not bind, creating a file
    in it fails as it would for anyone else."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_open = os.open

        def refusing_open(path: str | os.PathLike[str], flags: int, *args: object, **kwargs: object) -> int:
            if flags & os.O_CREAT and Path(path).parent == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
    yield folder
    folder.chmod(0o755)


def test_a_read_only_folder_is_a_clear_error_before_any_work(image, model_opened, read_only_folder, tmp_path, capsys):
    """An output or PNG in a folder that takes no new files is refused before the model loads, with a
    message naming the folder; nothing is written anywhere."""
    assert segment(image, read_only_folder / "out.seg.nrrd") == 2
    assert f"cannot write in the folder {read_only_folder}" in capsys.readouterr().err
    assert segment(image, tmp_path / "out.seg.nrrd", "--png", read_only_folder / "out.png") == 2
    assert "Permission denied" in capsys.readouterr().err
    assert not model_opened and not (tmp_path / "out.seg.nrrd").exists() and leftovers(tmp_path) == []


def test_a_segmentation_and_its_png_are_written_both_or_neither(image, model_opened, tmp_path, monkeypatch, capsys):
    """When the PNG cannot be written (here: the disk is full), the segmentation of the same run is
    not written either, earlier files stay as they were, and no temporary file is left."""
    from PIL import Image

    output, png = tmp_path / "out.seg.nrrd", tmp_path / "out.png"
    assert segment(image, output, "--png", png) == 0
    before = output.read_bytes(), png.read_bytes()
    capsys.readouterr()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    assert segment(image, output, "--png", png, "--box", "5,5,20,20") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (output.read_bytes(), png.read_bytes()) == before
    assert leftovers(tmp_path) == []


def test_every_output_kind_is_checked_before_it_replaces_the_earlier_one(tmp_path, monkeypatch):
    """Not only segmentations: a transform file or a prior map cut short by a full disk is found,
    and the earlier file stays."""
    transform = tmp_path / "moving_to_fixed.tfm"
    write_transform(transform, sitk.Euler3DTransform((0, 0, 0), 0.1, 0.2, 0.3, (1, 2, 3)))
    before = transform.read_bytes()
    real_write = sitk.WriteTransform

    def cut_transform(value: sitk.Transform, path: str) -> None:
        real_write(value, path)
        os.truncate(path, os.path.getsize(path) // 2)

    monkeypatch.setattr(sitk, "WriteTransform", cut_transform)
    with pytest.raises(OutputError, match="no output was changed"):
        write_transform(transform, sitk.Euler3DTransform((0, 0, 0), 0.5, 0.2, 0.3, (1, 2, 3)))
    assert transform.read_bytes() == before and leftovers(tmp_path) == []


def test_two_writers_of_one_path_never_collide_and_readers_never_see_half_a_file(tmp_path):
    """Writers of the same output each use a temporary of their own: none fails, and a reader of the
    output sees one writer's whole file, never a mix or a half."""
    path = tmp_path / "report.json"
    contents = [bytes([65 + n]) * 200_000 for n in range(4)]
    errors: list[Exception] = []
    seen: set[bytes] = set()
    done = threading.Event()

    def slow_write(content: bytes) -> Callable[[Path], None]:
        def write(temporary: Path) -> None:
            with open(temporary, "wb") as stream:
                for start in range(0, len(content), 20_000):
                    stream.write(content[start : start + 20_000])
                    stream.flush()
                    time.sleep(0.001)

        return write

    def writer(content: bytes) -> None:
        try:
            for _ in range(5):
                write_file(path, slow_write(content))
        except Exception as error:  # noqa: BLE001 - the test reports it
            errors.append(error)

    def reader() -> None:
        while not done.is_set():
            try:
                seen.add(path.read_bytes())
            except FileNotFoundError:
                pass

    threads = [threading.Thread(target=writer, args=(content,)) for content in contents]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    watcher.join()
    assert errors == []
    assert seen and seen <= set(contents)
    assert path.read_bytes() in contents and leftovers(tmp_path) == []


def test_interrupted_says_truthfully_what_was_written(image, model_opened, tmp_path, monkeypatch, capsys):
    """Ctrl+C before the outputs are in place reports that no output was written (and none was);
    Ctrl+C after they are names them."""
    from PIL import Image

    output, png = tmp_path / "out.seg.nrrd", tmp_path / "out.png"

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Image.Image, "save", interrupt)  # after the segmentation was staged
        assert segment(image, output, "--png", png) == 130
    assert "interrupted; no output was written." in capsys.readouterr().err
    assert not output.exists() and not png.exists() and leftovers(tmp_path) == []

    real_commit = atomic.OutputSet.commit

    def commit_then_interrupt(self: atomic.OutputSet) -> list[Path]:
        real_commit(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.OutputSet, "commit", commit_then_interrupt)
    assert segment(image, output, "--png", png) == 130
    assert f"interrupted; {output}, {png} were written, no other output." in capsys.readouterr().err


def test_a_written_file_keeps_the_permissions_a_new_file_gets(tmp_path):
    """Writing through a temporary does not make outputs private: they get the mode the umask gives."""
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    umask = os.umask(0o022)
    try:
        path = write_segmentation(tmp_path / "out.seg.nrrd", volume, [Segment("organ", volume.array > 100)])
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), (volume.array > 100).astype(np.uint8))
