"""`Record`: one example of a dataset, whatever form it came in, and how to read a cell.

A record holds its image either as a file path (today's JSONL, a dataset whose Image
feature stores paths) or as the encoded bytes (Parquet, `datasets` folders, the suite),
never decoded: a stream of records stays small until a row is scored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from vepo_viz.errors import VepoInputError


@dataclass(frozen=True)
class Record:
    """One example of a dataset (`vepo_viz.batch.Row` is this class)."""

    index: int
    """0-based position among the examples."""
    key: str
    """Its id column, or "row-<index>" when the data has none."""
    image: Path | None
    """Absolute image path, or None when the image is inline (`image_bytes`)."""
    question: str
    response: str | None
    """A response to score (None: the model generates one)."""
    family: str | None
    """The suite family or the data's "family" column (None if none)."""
    answer: str | None = None
    """The reference answer (None: the data has none; no correctness is reported)."""
    image_bytes: bytes | None = None
    """The encoded image when the data holds it inline (None once dropped or for a path)."""
    options: tuple[str, ...] | None = None
    """Answer options (multiple choice) or the suite's answer space, if the data has them."""
    extra: tuple[tuple[str, str], ...] = ()
    """(column, value) of the other columns asked for (e.g. --group-by)."""
    verifier: str = "auto"
    """The verifier that checks the answer (an entry of data.VERIFIERS)."""
    digest: str = ""
    """sha256 of the encoded image ("" when it cannot be read)."""
    where: str = ""
    """Where the example is, for messages ("data.parquet row 17")."""

    @property
    def label(self) -> str:
        """Short name for messages: the image file's name, or where the row is."""
        return self.image.name if self.image is not None else self.where or self.key

    def value(self, column: str) -> str | None:
        """The value of `column`: "family", or one of `extra`."""
        if column == "family":
            return self.family
        return dict(self.extra).get(column)

    def image_missing(self) -> str | None:
        """Why the image cannot be read (None when it can be)."""
        if self.image_bytes is not None:
            return None
        if self.image is None:  # inline: a light record (without_image) keeps its digest
            return None if self.digest else f"{self.where}: no image in the row"
        return None if self.image.is_file() else f"image file not found: {self.image}"

    def image_input(self) -> Path | Image.Image:
        """What `analyze` takes: the path, or the inline image decoded as stored (the
        analysis converts both the same way). VepoInputError when it cannot be read."""
        problem = self.image_missing()
        if problem:
            raise VepoInputError(problem)
        if self.image_bytes is None:
            if self.image is None:
                raise VepoInputError(f"{self.label}: a light record (read it with its image)")
            return self.image
        try:
            opened = Image.open(io.BytesIO(self.image_bytes))
            opened.load()
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise VepoInputError(f"{self.label}: cannot read the image ({error})") from error
        return opened

    def load_image(self) -> Image.Image:
        """The image as RGB (VepoInputError when it cannot be read)."""
        image = self.image_input()
        if isinstance(image, Path):
            try:
                with Image.open(image) as opened:
                    return opened.convert("RGB")
            except (OSError, ValueError) as error:
                raise VepoInputError(f"{self.label}: cannot read the image ({error})") from error
        return image.convert("RGB")

    def without_image(self) -> Record:
        """The same record without its inline bytes (keeps the digest)."""
        return replace(self, image_bytes=None)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes ("" when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_cell(value: Any, base: Path, where: str) -> tuple[Path | None, bytes | None]:
    """(path, bytes) of an image cell: bytes, a path (relative to `base`), a
    {"bytes", "path"} dict (the `datasets` Image feature; bytes may be base64 in JSONL),
    a PIL image, or a list of those (the first is used)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise VepoInputError(f"{where}: the image list is empty")
        value = value[0]
    if isinstance(value, Image.Image):
        return None, png_bytes(value)
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if data:
            return None, _as_bytes(data, where)
        value = path
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None, bytes(value)
    if isinstance(value, str) and value.strip():
        path = Path(value)
        return (path if path.is_absolute() else base / path).resolve(), None
    raise VepoInputError(
        f"{where}: the image cell must be bytes, a path or a {{'bytes', 'path'}} dict, "
        f"got {type(value).__name__}"
    )


def _as_bytes(data: Any, where: str) -> bytes:
    if isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise VepoInputError(f"{where}: image bytes given as text must be base64") from error
    return bytes(data)
