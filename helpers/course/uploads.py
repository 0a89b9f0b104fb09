"""The learner's own photos: upload them (Colab's uploader, a Drive folder or a widget) and accept iPhone HEIC.

ipywidgets' upload button cannot send a file of 1 MB or more on Colab, which is most phone
photos, so on Colab the kit uses Colab's own uploader instead. HEIC photos (iPhones) are
converted to JPEG on arrival, because training reads JPEG and PNG.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from helpers.course.widgets import uploaded_files
from helpers.train.data import IMAGE_SUFFIXES, SubjectDataError

HEIC_SUFFIXES = {".heic", ".heif"}


class PhotosNeeded(SubjectDataError):
    """The subject folder is empty and the learner has been shown how to fill it."""


def _open_heic(content: bytes) -> Image.Image:
    try:
        import pillow_heif
    except ImportError as err:
        raise SubjectDataError(
            "This photo is HEIC (an iPhone photo) and pillow-heif is not installed. Install it "
            "(`pip install pillow-heif`) or export the photo as JPEG, then upload it again."
        ) from err
    pillow_heif.register_heif_opener()
    return Image.open(io.BytesIO(content))


def save_photo(name: str, content: bytes, folder: str | Path) -> Path:
    """Check one uploaded file and save it into ``folder``; HEIC is converted to JPEG.

    Returns:
        The saved file (``photo.jpg`` for ``photo.heic``).

    Raises:
        SubjectDataError: the file is not an image the kit can read; the message says what to do.
    """
    folder, name = Path(folder), Path(name).name
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(name).suffix.lower()
    try:
        if suffix in HEIC_SUFFIXES:
            target = folder / f"{Path(name).stem}.jpg"
            _open_heic(content).convert("RGB").save(target, quality=95)
            print(f"converted {name} (HEIC) to {target.name}")
            return target
        Image.open(io.BytesIO(content)).verify()
    except SubjectDataError:
        raise
    except Exception as err:  # noqa: BLE001 (PIL raises many kinds of errors on a broken file)
        raise SubjectDataError(f"Upload {name!r} is not an image this kit can read ({err}); use JPEG, PNG or HEIC.")
    if suffix not in IMAGE_SUFFIXES:
        raise SubjectDataError(f"Upload {name!r} has the suffix {suffix!r}; rename it to .jpg or .png.")
    (folder / name).write_bytes(content)
    return folder / name


def save_uploads(uploads, folder: str | Path) -> list[Path]:
    """Save every file of an upload: an upload button's value (ipywidgets 7 or 8) or Colab's dict."""
    return [save_photo(name, content, folder) for name, content in uploaded_files(uploads)]


def convert_heic_folder(folder: str | Path) -> list[Path]:
    """Convert HEIC photos already in ``folder`` (copied there on Drive, say) to JPEG beside them."""
    folder = Path(folder)
    converted = []
    for path in sorted(p for p in folder.glob("*") if p.suffix.lower() in HEIC_SUFFIXES) if folder.is_dir() else []:
        target = folder / f"{path.stem}.jpg"
        if not target.exists():
            converted.append(save_photo(path.name, path.read_bytes(), folder))
    return converted


def upload_widget(folder: str | Path):
    """An upload button that saves the chosen photos into ``folder`` (Jupyter and Kaggle; on Colab see :func:`ask_for_photos`)."""
    import ipywidgets as widgets

    button = widgets.FileUpload(accept="image/*,.heic,.heif", multiple=True, description="Subject photos")
    status = widgets.Label("")

    def on_change(change):
        try:
            paths = save_uploads(change["new"], folder)
        except SubjectDataError as err:
            status.value = str(err)
        else:
            status.value = f"saved {len(paths)} image(s) to {Path(folder).name}/; now run the cell again"

    button.observe(on_change, names="value")
    return widgets.VBox([button, status])


def _colab_upload() -> dict[str, bytes]:
    from google.colab import files  # only on Colab

    return files.upload()


def ask_for_photos(folder: str | Path, platform: str, colab_upload: Callable[[], dict] | None = None,
                   show: Callable | None = None) -> list[Path]:
    """Ask the learner for photos of their subject and save them into ``folder``.

    On Colab this opens Colab's own file chooser (no size limit) and returns when the upload is
    done; a Drive folder works too (copy the photos into ``folder`` and run the cell again).
    Elsewhere it shows an upload button and raises :class:`PhotosNeeded`, because a widget's
    files arrive only after the cell has finished.

    Args:
        folder: where the subject's photos go.
        platform: ``"colab"``, ``"kaggle"`` or ``"local"`` (:func:`helpers.base.home.detect_platform`).
        colab_upload, show: stand-ins for Colab's uploader and IPython's ``display`` (tests).
    """
    folder = Path(folder)
    advice = (f"Choose 3-10 photos of one person or object (different poses and backgrounds; for a person, only with "
              f"their consent). They are saved to {folder.name}/ in the course home.")
    if platform == "colab":
        print(advice + f" Or copy them into {folder} on your Drive and run this cell again.")
        saved = save_uploads((colab_upload or _colab_upload)(), folder)
        if not saved:
            raise PhotosNeeded("No photos were uploaded. Run the cell again and choose some.")
        return saved
    if show is None:
        from IPython.display import display as show
    show(upload_widget(folder))
    raise PhotosNeeded(advice + " Use the button above, then run this cell again.")
