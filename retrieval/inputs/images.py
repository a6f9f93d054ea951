"""Load chest X-ray files (PNG, JPEG, DICOM, ...) as 8-bit grayscale images, exactly like the BioViL reference.

The pixel pipeline for PIL-readable formats reproduces hi-ml-multimodal 0.2.2 ``load_image``: the stored array (as
``skimage.io.imread`` / imageio v3 returns it, 16-bit kept as ``uint16``) is min-max remapped to ``uint8`` over all
channels jointly, then converted to PIL mode ``"L"``. DICOM files go through the modality LUT, the VOI LUT / window
and MONOCHROME1 inversion first (as torchxrayvision's ``read_xray_dcm`` does).

Formats are recognised by content, never by extension. DICOM files are read with a fixed list of pixel-related tags
only, so patient identifiers are never parsed, kept, logged or put into error messages.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

__all__ = ["REASONS", "ImageLoadError", "LoadedImage", "load_image", "sniff_format"]

#: Every value ``ImageLoadError.reason`` can take.
REASONS: tuple[str, ...] = (
    "missing", "unreadable", "empty", "not-an-image", "corrupt", "truncated", "decompression-bomb",
    "unsupported-dicom", "too-small", "blank",
)  # fmt: skip
MIN_SIDE = 2
# Only plain raster formats: PIL plugins such as EPS would run external programs on untrusted uploads.
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)  # fmt: skip
# The only DICOM elements ever parsed: image pixel module, modality LUT, VOI LUT and palette colour LUTs.
_DICOM_TAGS: list[str] = [
    *"""SamplesPerPixel PhotometricInterpretation PlanarConfiguration NumberOfFrames Rows Columns BitsAllocated
    BitsStored HighBit PixelRepresentation PixelData FloatPixelData DoubleFloatPixelData ExtendedOffsetTable
    ExtendedOffsetTableLengths RescaleSlope RescaleIntercept RescaleType ModalityLUTSequence WindowCenter WindowWidth
    VOILUTFunction VOILUTSequence""".split(),
    *(f"{c}PaletteColorLookupTable{s}" for c in ("Red", "Green", "Blue") for s in ("Descriptor", "Data")),
    *(f"Segmented{c}PaletteColorLookupTableData" for c in ("Red", "Green", "Blue")),
]
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class ImageLoadError(ValueError):
    """An image could not be loaded; ``reason`` is one of :data:`REASONS`, ``source`` the path or upload name."""

    def __init__(self, source: str, reason: str, detail: str) -> None:
        super().__init__(f"cannot read image '{source}': {detail}")
        self.source = source
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[ImageLoadError], tuple[str, str, str]]:
        return type(self), (self.source, self.reason, self.detail)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``image`` is PIL mode ``"L"``; ``width``/``height`` the original size; ``format`` e.g. PNG."""

    image: Image.Image
    width: int
    height: int
    format: str


def sniff_format(head: bytes) -> str | None:
    """The format named by the magic bytes at the start of a file ("PNG", "JPEG", "DICOM", ...), or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "DICOM"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def load_image(source: str | os.PathLike[str] | bytes | bytearray | memoryview, name: str | None = None) -> LoadedImage:
    """Load a path or the raw bytes of an upload as a grayscale ``LoadedImage``.

    ``name`` labels the source in errors (default: the path, or ``"<upload>"`` for bytes). Raises
    :class:`ImageLoadError` for every failure, whatever the decoder raised.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<upload>"
        if not data:
            raise ImageLoadError(label, "empty", "file is empty")
        return _load_stream(io.BytesIO(data), label)
    path = os.fspath(source)
    label = name or os.fsdecode(path)
    try:
        if not os.path.exists(path):
            raise ImageLoadError(label, "missing", "file does not exist")
        if not os.path.isfile(path):
            raise ImageLoadError(label, "not-an-image", "not a regular file")
        if os.path.getsize(path) == 0:
            raise ImageLoadError(label, "empty", "file is empty")
        fh = open(path, "rb")
    except OSError as exc:
        raise ImageLoadError(label, "unreadable", f"cannot open file ({exc.strerror or type(exc).__name__})") from None
    with fh:
        return _load_stream(fh, label)


def _load_stream(fh: BinaryIO, label: str) -> LoadedImage:
    """Dispatch on content: DICOM preamble (or a ``.dcm`` name without image magic) to pydicom, the rest to PIL."""
    head = fh.read(132)
    fh.seek(0)
    sniffed = sniff_format(head)
    if sniffed == "DICOM" or (sniffed is None and label.lower().endswith(".dcm")):
        arr = _read_dicom(fh, label, has_preamble=sniffed == "DICOM")
        fmt = "DICOM"
    else:
        arr, fmt = _read_pil(fh, label, sniffed)
    image = _remap_to_gray(arr, label)
    return LoadedImage(image=image, width=image.width, height=image.height, format=fmt)


def _check_size(label: str, width: int, height: int) -> None:
    """Reject images under MIN_SIDE pixels a side, and those over PIL's decompression-bomb pixel limit."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageLoadError(label, "too-small", f"image is {width}x{height}, smaller than {MIN_SIDE}x{MIN_SIDE}")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageLoadError(label, "decompression-bomb", f"image is {width}x{height}, over {limit} pixels")


def _decode_failure(label: str, exc: BaseException) -> ImageLoadError:
    """Map a decoder exception to an ImageLoadError, keeping the decoder's message."""
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageLoadError(label, "decompression-bomb", str(exc))
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ValueError) and "Decompressed data too large" in text:
        return ImageLoadError(label, "decompression-bomb", text)
    if isinstance(exc, (OSError, EOFError)) and "truncat" in text.lower():
        return ImageLoadError(label, "truncated", f"file is truncated ({text})")
    return ImageLoadError(label, "corrupt", f"cannot decode image ({type(exc).__name__}: {text})")


def _read_pil(fh: BinaryIO, label: str, sniffed: str | None) -> tuple[np.ndarray, str]:
    """Decode with PIL into the array imageio v3 (hence ``skimage.io.imread``) would return, plus the format."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(fh, formats=_PIL_FORMATS)
        except UnidentifiedImageError:
            if sniffed is None:
                raise ImageLoadError(label, "not-an-image", "not a recognised image or DICOM file") from None
            raise ImageLoadError(label, "corrupt", f"{sniffed} header is damaged or truncated") from None
        except Exception as exc:  # any decoder error becomes an ImageLoadError
            raise _decode_failure(label, exc) from exc
        with img:
            fmt = "JPEG" if img.format == "MPO" else str(img.format)
            _check_size(label, img.width, img.height)
            try:
                img.load()
                return _pil_array(img), fmt
            except Exception as exc:
                raise _decode_failure(label, exc) from exc


def _pil_array(img: Image.Image) -> np.ndarray:
    """The array imageio v3's pillow plugin returns (palette applied, 16-bit PNG as uint16); CMYK made RGB."""
    if img.mode == "P":
        img = img.convert(img.palette.mode if img.palette is not None else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    elif img.format == "PNG" and img.mode == "I":
        img = img.convert("I;16")
    elif img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    return np.asarray(img)


def _blank(label: str) -> ImageLoadError:
    """The error for an image whose pixels all have one value (nothing to remap)."""
    return ImageLoadError(label, "blank", "image is blank (all pixels have the same value)")


def _uint8_remap_table(label: str, lo: int, hi: int) -> np.ndarray:
    """[256] uint8: value v -> hi-ml's remap of v for an image spanning [lo, hi], by exactly :func:`_remap_to_gray`'s
    float64 operations (element by element, so bit-identical to remapping the whole image; values outside [lo, hi]
    never occur and map to 0)."""
    if hi == lo:
        raise _blank(label)
    a = np.arange(lo, hi + 1, dtype=float)
    a -= lo
    a /= hi - lo
    a *= 255
    table = np.zeros(256, np.uint8)
    table[lo:hi + 1] = a.astype(np.uint8)
    return table


def _remap_to_gray(arr: np.ndarray, label: str) -> Image.Image:
    """hi-ml ``remap_to_uint8`` (joint min-max over all channels) then ``Image.fromarray(...).convert("L")``."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (2, 3, 4))):
        raise ImageLoadError(label, "corrupt", f"unsupported pixel array shape {arr.shape}")
    _check_size(label, arr.shape[1], arr.shape[0])
    if arr.dtype == np.uint8:  # the same float64 steps on the 256 possible values, then a table lookup
        return Image.fromarray(_uint8_remap_table(label, int(arr.min()), int(arr.max()))[arr]).convert("L")
    a = arr.astype(float)
    a -= a.min()
    top = a.max()
    if not np.isfinite(top):
        raise ImageLoadError(label, "corrupt", "pixel values are not finite")
    if top == 0:
        raise _blank(label)
    a /= top
    a *= 255
    return Image.fromarray(a.astype(np.uint8)).convert("L")


def _read_dicom(fh: BinaryIO, label: str, has_preamble: bool) -> np.ndarray:
    """First frame of a DICOM file after modality LUT, VOI LUT/window and MONOCHROME1 inversion.

    Only the tags in ``_DICOM_TAGS`` are parsed; the dataset is dropped before returning. Messages never carry
    header values: read failures report the exception type only.
    """
    failure: str | None = None
    try:
        ds = pydicom.dcmread(fh, force=True, specific_tags=_DICOM_TAGS)
    except Exception as exc:  # raised outside the handler so no exception context (with header bytes) is chained
        failure = type(exc).__name__
    if failure is not None:
        reason = "truncated" if failure == "EOFError" else "corrupt" if has_preamble else "not-an-image"
        raise ImageLoadError(label, reason, f"cannot parse DICOM file ({failure})")
    try:
        return _dicom_pixels(ds, label, has_preamble)
    finally:
        del ds


def _dicom_pixels(ds: pydicom.Dataset, label: str, has_preamble: bool) -> np.ndarray:
    """Decode and transform the pixel data of a dataset parsed by :func:`_read_dicom`."""
    if not any(tag in ds for tag in _PIXEL_TAGS):
        if not has_preamble and "Rows" not in ds:
            raise ImageLoadError(label, "not-an-image", "not a recognised image or DICOM file")
        raise ImageLoadError(label, "unsupported-dicom", "DICOM file has no pixel data")
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:  # preamble-less or damaged file meta: use the encoding pydicom detected
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
    tsuid = UID(str(meta.TransferSyntaxUID))
    rows, columns = _int_or_zero(ds, "Rows"), _int_or_zero(ds, "Columns")
    if not rows or not columns:
        raise ImageLoadError(label, "unsupported-dicom", "DICOM file has no valid Rows/Columns")
    _check_size(label, columns, rows)
    try:
        if _int_or_zero(ds, "NumberOfFrames") > 1:
            ds.pixel_array_options(index=0)
        arr = ds.pixel_array
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            return arr  # colour: joint min-max then RGB -> L, as for PNG/JPEG
        if photometric == "PALETTE COLOR":
            return apply_color_lut(arr, ds)
        if arr.ndim != 2:
            raise ImageLoadError(label, "unsupported-dicom", f"unsupported DICOM pixel array shape {arr.shape}")
        arr = apply_modality_lut(arr, ds)
        if "WindowCenter" in ds or "VOILUTSequence" in ds:
            arr = apply_voi_lut(arr, ds)
        if photometric == "MONOCHROME1":
            arr = arr.max() - arr
        return arr
    except ImageLoadError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        if tsuid.is_compressed:
            name = str(tsuid) if tsuid.name == str(tsuid) else f"{tsuid} ({tsuid.name})"
            raise ImageLoadError(label, "unsupported-dicom", f"no decoder for transfer syntax {name}") from None
        raise ImageLoadError(label, "corrupt", f"cannot decode DICOM pixel data ({exc})"[:300]) from None
    except Exception as exc:
        reason = "truncated" if "less than expected" in str(exc) else "corrupt"
        raise ImageLoadError(label, reason, f"cannot decode DICOM pixel data ({exc})"[:300]) from None


def _int_or_zero(ds: pydicom.Dataset, keyword: str) -> int:
    """An integer element of the dataset, 0 when absent or not a number."""
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0
