"""Tests for retrieval.inputs.images: formats, the hi-ml remap, DICOM transforms, error reasons and DICOM privacy."""

from __future__ import annotations

import io
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageFile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGLSLossless

from cxr_explorer.retrieval.inputs.images import REASONS, ImageLoadError, LoadedImage, load_image, sniff_format

IDENTIFIERS = ("Doe", "Jane", "PID-12345")
RNG = np.random.default_rng(1234)


def expected_gray(arr: np.ndarray) -> np.ndarray:
    """hi-ml-multimodal 0.2.2: remap_to_uint8 (joint min-max) then Image.fromarray(...).convert("L")."""
    a = arr.astype(float)
    a -= a.min()
    a /= a.max()
    a *= 255
    return np.asarray(Image.fromarray(a.astype(np.uint8)).convert("L"))


def save(tmp_path: Path, name: str, img: Image.Image, fmt: str, **kwargs: object) -> Path:
    path = tmp_path / name
    img.save(path, format=fmt, **kwargs)
    return path


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_dicom(arr: np.ndarray, photometric: str = "MONOCHROME2", pixels: bool = True, **elements: Any) -> bytes:
    """A synthetic DICOM file (12 bits stored in 16) carrying a patient name and ID that must never leak."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = elements.pop("transfer_syntax", ExplicitVRLittleEndian)
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4.5.6.7")
    ds = Dataset()
    ds.file_meta = meta
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-12345"
    ds.Rows, ds.Columns = arr.shape[-2], arr.shape[-1]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = photometric
    for key, value in elements.items():
        setattr(ds, key, value)
    if pixels and "PixelData" not in ds:
        ds.PixelData = arr.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


RAMP = (np.arange(24 * 32).reshape(24, 32) * 5 % 4096).astype(np.uint16)


def assert_no_identifiers(*texts: str) -> None:
    for text in texts:
        for ident in IDENTIFIERS:
            assert ident not in text


# ---------------------------------------------------------------- formats


def test_gray_png_matches_reference_remap(tmp_path: Path) -> None:
    arr = RNG.integers(10, 200, (21, 34), dtype=np.uint8)
    loaded = load_image(save(tmp_path, "g.png", Image.fromarray(arr), "PNG"))
    assert isinstance(loaded, LoadedImage)
    assert (loaded.width, loaded.height, loaded.format, loaded.image.mode) == (34, 21, "PNG", "L")
    got = np.asarray(loaded.image)
    assert got.dtype == np.uint8 and got.min() == 0 and got.max() == 255
    np.testing.assert_array_equal(got, expected_gray(arr))


@pytest.mark.parametrize("shape", [(64, 80), (40, 50, 3), (30, 20, 4)])
@pytest.mark.parametrize(("lo", "hi"), [(0, 255), (10, 200), (37, 38), (3, 251)])
def test_uint8_remap_equals_the_float_remap(shape: tuple[int, ...], lo: int, hi: int) -> None:
    """The 8-bit path (a 256-entry table) gives exactly the float64 remap's pixels, for gray, RGB and RGBA arrays."""
    from cxr_explorer.retrieval.inputs.images import _remap_to_gray

    arr = RNG.integers(lo, hi + 1, shape, dtype=np.uint8)
    arr.flat[0], arr.flat[1] = lo, hi
    np.testing.assert_array_equal(np.asarray(_remap_to_gray(arr, "x")), expected_gray(arr))


def test_16bit_png_uses_full_range(tmp_path: Path) -> None:
    arr = RNG.integers(1000, 50000, (17, 19), dtype=np.uint16)
    arr[0, 0], arr[0, 1], arr[0, 2] = 1000, 50000, 1100  # 1100 and 1000 differ only below the top byte
    loaded = load_image(save(tmp_path, "g16.png", Image.fromarray(arr), "PNG"))
    got = np.asarray(loaded.image)
    np.testing.assert_array_equal(got, expected_gray(arr))
    assert got[0, 0] == 0 and got[0, 1] == 255 and got[0, 2] == 0  # floor(100 / 49000 * 255) == 0
    assert not np.array_equal(got, expected_gray(arr >> 8))


def test_rgba_png_joint_minmax_over_four_channels(tmp_path: Path) -> None:
    arr = RNG.integers(30, 220, (12, 15, 4), dtype=np.uint8)
    loaded = load_image(save(tmp_path, "rgba.png", Image.fromarray(arr, "RGBA"), "PNG"))
    np.testing.assert_array_equal(np.asarray(loaded.image), expected_gray(arr))


@pytest.mark.parametrize("transparency", [None, 3])
def test_palette_png_applied_like_imageio(tmp_path: Path, transparency: int | None) -> None:
    rgb = RNG.integers(20, 230, (13, 16, 3), dtype=np.uint8)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    kwargs = {} if transparency is None else {"transparency": transparency}
    path = save(tmp_path, "pal.png", pal, "PNG", **kwargs)
    with Image.open(path) as img:
        assert img.palette is not None
        ref = np.asarray(img.convert(img.palette.mode))  # imageio v3 pillow plugin: convert(palette.mode)
    np.testing.assert_array_equal(np.asarray(load_image(path).image), expected_gray(ref))


def test_la_png(tmp_path: Path) -> None:
    arr = RNG.integers(0, 255, (9, 8, 2), dtype=np.uint8)
    loaded = load_image(save(tmp_path, "la.png", Image.fromarray(arr, "LA"), "PNG"))
    np.testing.assert_array_equal(np.asarray(loaded.image), expected_gray(arr))


@pytest.mark.parametrize("kwargs", [{}, {"progressive": True, "quality": 70}])
def test_rgb_jpeg(tmp_path: Path, kwargs: dict[str, object]) -> None:
    rgb = RNG.integers(20, 230, (24, 40, 3), dtype=np.uint8)
    path = save(tmp_path, "x.jpg", Image.fromarray(rgb), "JPEG", **kwargs)
    with Image.open(path) as img:
        ref = np.asarray(img)
    loaded = load_image(path)
    assert loaded.format == "JPEG" and (loaded.width, loaded.height) == (40, 24)
    np.testing.assert_array_equal(np.asarray(loaded.image), expected_gray(ref))


def test_cmyk_jpeg_converted_to_rgb_first(tmp_path: Path) -> None:
    rgb = RNG.integers(20, 230, (16, 16, 3), dtype=np.uint8)
    path = save(tmp_path, "c.jpg", Image.fromarray(rgb).convert("CMYK"), "JPEG")
    with Image.open(path) as img:
        assert img.mode == "CMYK"
        ref = np.asarray(img.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(path).image), expected_gray(ref))


@pytest.mark.parametrize("name", ["noext", "wrong.jpg", "wrong.dcm", "UPPER.PNG"])
def test_format_from_content_not_extension(tmp_path: Path, name: str) -> None:
    arr = RNG.integers(0, 255, (6, 7), dtype=np.uint8)
    path = tmp_path / name
    path.write_bytes(png_bytes(arr))
    loaded = load_image(path)
    assert loaded.format == "PNG"
    np.testing.assert_array_equal(np.asarray(loaded.image), expected_gray(arr))


def test_bytes_input_and_path_agree(tmp_path: Path) -> None:
    arr = RNG.integers(0, 255, (6, 7), dtype=np.uint8)
    data = png_bytes(arr)
    (tmp_path / "a.png").write_bytes(data)
    a, b = load_image(data, name="upload.png"), load_image(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(np.asarray(a.image), np.asarray(b.image))
    assert load_image(bytearray(data)).format == "PNG"


def test_sniff_format() -> None:
    assert sniff_format(png_bytes(np.zeros((2, 2), np.uint8))) == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"\0" * 128 + b"DICM") == "DICOM"
    assert sniff_format(b"hello") is None


# ---------------------------------------------------------------- errors


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = png_bytes(RNG.integers(0, 255, (100, 100), dtype=np.uint8))
    corrupt = bytearray(good)
    corrupt[200:260] = b"\0" * 60
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, format="JPEG")
    files = {
        "empty.png": b"",
        "text.png": b"just some text, not an image\n",
        "corrupt.png": bytes(corrupt),
        "header.png": good[:8] + b"garbage garbage garbage garbage",
        "cut.png": good[: len(good) // 2],
        "cut.jpg": buf.getvalue()[: len(buf.getvalue()) // 2],
        "tiny.png": png_bytes(np.array([[0, 255, 7]], dtype=np.uint8)),
        "flat.png": png_bytes(np.full((5, 5), 77, dtype=np.uint8)),
        "text.dcm": b"not a dicom either\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    reasons = {
        "empty.png": "empty",
        "text.png": "not-an-image",
        "corrupt.png": "corrupt",
        "header.png": "corrupt",
        "cut.png": "truncated",
        "cut.jpg": "truncated",
        "tiny.png": "too-small",
        "flat.png": "blank",
        "text.dcm": "not-an-image",
    }
    return {name: (tmp_path / name, reasons[name]) for name in files}


@pytest.mark.parametrize(
    "name",
    ["empty.png", "text.png", "corrupt.png", "header.png", "cut.png", "cut.jpg", "tiny.png", "flat.png", "text.dcm"],
)
@pytest.mark.parametrize("as_bytes", [False, True])
def test_bad_files_reason_and_name(tmp_path: Path, name: str, as_bytes: bool) -> None:
    path, reason = _bad_files(tmp_path)[name]
    with pytest.raises(ImageLoadError) as info:
        load_image(path.read_bytes(), name=name) if as_bytes else load_image(path)
    err = info.value
    assert err.reason == reason and err.reason in REASONS
    assert err.source == (name if as_bytes else str(path))
    assert str(err).startswith(f"cannot read image '{err.source}': ")


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="nope.png") as info:
        load_image(tmp_path / "nope.png")
    assert info.value.reason == "missing"
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path)
    assert info.value.reason == "not-an-image"


def test_truncated_message_and_pickle(tmp_path: Path) -> None:
    path, _ = _bad_files(tmp_path)["cut.png"]
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value).startswith(f"cannot read image '{path}': file is truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.source, again.reason, str(again)) == (info.value.source, "truncated", str(info.value))


@pytest.mark.parametrize("side", [20, 30])  # 400 px: PIL warning (made an error); 900 px: PIL's own error
def test_decompression_bomb(monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    with pytest.raises(ImageLoadError) as info:
        load_image(png_bytes(np.zeros((side, side), np.uint8)), name="bomb.png")
    assert info.value.reason == "decompression-bomb" and "bomb.png" in str(info.value)
    with pytest.raises(ImageLoadError) as info:
        load_image(make_dicom(np.zeros((side, side), np.uint16)), name="bomb.dcm")
    assert info.value.reason == "decompression-bomb"


def test_unexpected_decoder_exception_is_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: ImageFile.ImageFile) -> None:
        raise KeyError("decoder exploded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    with pytest.raises(ImageLoadError, match="decoder exploded") as info:
        load_image(png_bytes(np.zeros((4, 4), np.uint8)), name="x.png")
    assert info.value.reason == "corrupt"


# ---------------------------------------------------------------- DICOM


def dicom_gray(data: bytes, name: str = "x.dcm") -> np.ndarray:
    loaded = load_image(data, name=name)
    assert loaded.format == "DICOM" and loaded.image.mode == "L"
    return np.asarray(loaded.image)


def test_dicom_monochrome2_plain(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(make_dicom(RAMP))
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (32, 24)
    np.testing.assert_array_equal(np.asarray(loaded.image), expected_gray(RAMP))


def test_dicom_monochrome1_is_inverted() -> None:
    mono2 = dicom_gray(make_dicom(RAMP, "MONOCHROME2"))
    mono1 = dicom_gray(make_dicom(RAMP, "MONOCHROME1"))
    np.testing.assert_array_equal(mono1, expected_gray(RAMP.max() - RAMP.astype(float)))
    assert np.corrcoef(mono1.ravel().astype(float), mono2.ravel().astype(float))[0, 1] < -0.99
    assert mono2[RAMP == RAMP.max()].min() == 255 and mono1[RAMP == RAMP.max()].max() == 0


def test_dicom_rescale_slope_applied() -> None:
    plain = dicom_gray(make_dicom(RAMP))
    flipped = dicom_gray(make_dicom(RAMP, RescaleSlope=-1, RescaleIntercept=100))  # min-max cannot undo a flip
    np.testing.assert_array_equal(flipped, expected_gray(100 - RAMP.astype(float)))
    assert not np.array_equal(plain, flipped)


def test_dicom_window_applied() -> None:
    got = dicom_gray(make_dicom(RAMP, WindowCenter=2048, WindowWidth=1024))
    assert (got[RAMP < 1530] == 0).all() and (got[RAMP > 2565] == 255).all()
    mid = (RAMP > 1600) & (RAMP < 2500)
    assert 0 < got[mid].min() and got[mid].max() < 255


def test_dicom_window_in_rescaled_units() -> None:
    # raw -> 2 * raw - 1000; window [0, 2000] in rescaled units is raw [500, 1500]
    got = dicom_gray(make_dicom(RAMP, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1000, WindowWidth=2000))
    assert (got[RAMP < 495] == 0).all() and (got[RAMP > 1505] == 255).all()
    assert 0 < got[(RAMP > 600) & (RAMP < 1400)].min()


def test_dicom_multiframe_takes_first_frame() -> None:
    frames = np.stack([RAMP, RAMP[::-1]])
    data = make_dicom(frames, NumberOfFrames=2, PixelData=frames.astype(np.uint16).tobytes())
    np.testing.assert_array_equal(dicom_gray(data), expected_gray(RAMP))


def test_dicom_rgb() -> None:
    rgb = RNG.integers(0, 255, (6, 7, 3), dtype=np.uint8)
    data = make_dicom(
        rgb[..., 0],
        "RGB",
        SamplesPerPixel=3,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
        PlanarConfiguration=0,
        PixelData=rgb.tobytes(),
    )
    np.testing.assert_array_equal(dicom_gray(data), expected_gray(rgb))


def test_dicom_without_preamble_needs_dcm_name() -> None:
    body = make_dicom(RAMP)[132:]
    np.testing.assert_array_equal(dicom_gray(body, "nopreamble.dcm"), expected_gray(RAMP))
    with pytest.raises(ImageLoadError) as info:
        load_image(body, name="nopreamble.bin")
    assert info.value.reason == "not-an-image"


def _dicom_errors() -> dict[str, tuple[bytes, str]]:
    full = make_dicom(RAMP)
    jpegls = make_dicom(RAMP, transfer_syntax=JPEGLSLossless, PixelData=encapsulate([b"\xff\xd8junk\xff\xd9"]))
    return {
        "nopixels.dcm": (make_dicom(RAMP, pixels=False), "unsupported-dicom"),
        "jpegls.dcm": (jpegls, "unsupported-dicom"),
        "cut.dcm": (full[:-100], "truncated"),
        "tiny.dcm": (make_dicom(np.zeros((1, 5), np.uint16)), "too-small"),
        "flat.dcm": (make_dicom(np.full((4, 4), 9, np.uint16)), "blank"),
    }


@pytest.mark.parametrize("name", ["nopixels.dcm", "jpegls.dcm", "cut.dcm", "tiny.dcm", "flat.dcm"])
def test_dicom_errors_have_reason_and_no_identifiers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    data, reason = _dicom_errors()[name]
    assert b"PID-12345" in data and b"Doe^Jane" in data
    path = tmp_path / name
    path.write_bytes(data)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ImageLoadError) as info:
        warnings.simplefilter("always")
        load_image(path)
    err = info.value
    assert err.reason == reason and name in str(err)
    if name == "jpegls.dcm":
        assert str(JPEGLSLossless) in str(err)
    assert_no_identifiers(str(err), repr(err), err.detail, caplog.text, *(str(w.message) for w in caught))
    assert_no_identifiers(*(str(e) for e in (err.__cause__, err.__context__) if e is not None))


def test_dicom_load_leaks_no_identifiers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_image(make_dicom(RAMP, "MONOCHROME1", WindowCenter=2048, WindowWidth=4096), name="s.dcm")
    assert_no_identifiers(
        repr(loaded), str(loaded), repr(loaded.image.info), caplog.text, *(str(w.message) for w in caught)
    )
    assert loaded.image.info == {}
    assert pydicom.config.debugging is False
