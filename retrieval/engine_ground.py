"""Grounding and zero-shot scoring of the query engine (mixed into :class:`retrieval.engine.Engine`).

Bundle cases are grounded from their STORED patch embeddings (no image forward); uploads take one forward pass,
cached by content hash. All maths comes from :mod:`retrieval.grounding`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import pandas as pd
import torch
from PIL import Image

from retrieval import grounding as G
from retrieval.imageio import ImageLoadError, load_image
from retrieval.models.text_model import TextInputError
from retrieval.text import clean_text, split_sentences

if TYPE_CHECKING:
    from retrieval.bundle import Bundle
    from retrieval.models import VLModel

log = logging.getLogger(__name__)
ImageInput = bytes | str | os.PathLike[str] | Image.Image
_HEADER_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # plain raster formats only, as retrieval.imageio
K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used cache."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The cached value of ``key``, computing and storing it on a miss (computed outside the lock)."""
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = compute()
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True)
class Grounding:
    """Phrase grounding of one image: ``map`` [height, width] float32 (NaN outside the model's centre crop),
    ``grid`` [h, w] smoothed patch-level cosine similarities, ``score`` the global image-text cosine similarity.
    """

    map: np.ndarray
    grid: np.ndarray
    score: float
    width: int
    height: int
    text: str


@dataclass(frozen=True)
class SentenceGrounding:
    """One report sentence grounded on an image: ``index`` in the report, its ``grounding``, cosine ``score``."""

    index: int
    text: str
    score: float
    grounding: Grounding


@dataclass(frozen=True)
class UploadEncoding:
    """One uploaded image after its single forward: global [D], patches [h, w, D] (float32), original size."""

    global_emb: np.ndarray
    patches: np.ndarray
    width: int
    height: int


def image_bytes(image: ImageInput) -> tuple[bytes, str]:
    """Raw bytes and a label for an upload: bytes as given, a path read once, a PIL image saved as PNG.

    An unreadable path raises the precise :class:`retrieval.imageio.ImageLoadError` (missing, empty, ...).
    """
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        try:
            image.save(buf, format="PNG")
        except (OSError, ValueError) as exc:
            raise ImageLoadError("<image>", "corrupt", f"cannot encode image of mode {image.mode} ({exc})") from None
        return buf.getvalue(), "<image>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), "<upload>"
    label = os.fspath(image)
    try:
        data = Path(label).read_bytes()
    except OSError:
        data = b""
    if not data:
        load_image(label)  # raises the precise reason
        raise ImageLoadError(label, "unreadable", "cannot read file")
    return data, label


class GroundingMixin:
    """Grounding, report grounding and zero-shot methods; needs the attributes below from the engine."""

    bundle: Bundle
    model: VLModel
    _model_lock: threading.RLock
    _uploads: LRU[str, UploadEncoding]
    _prompt_cache: LRU[tuple[str, ...], torch.Tensor]
    _sizes: dict[int, tuple[int, int]]

    def text_embedding(self, text: str) -> np.ndarray:  # pragma: no cover - provided by Engine
        raise NotImplementedError

    def image_vector(self, row: int) -> np.ndarray:  # pragma: no cover - provided by Engine
        raise NotImplementedError

    def check_row(self, row: int) -> int:  # pragma: no cover - provided by Engine
        raise NotImplementedError

    def original_size(self, row: int) -> tuple[int, int]:
        """(width, height) of the original image: metadata columns, else the recorded file's header."""
        row = self.check_row(row)
        if row not in self._sizes:
            self._sizes[row] = recorded_size(self.bundle.metadata, row) or file_size(self.bundle.image_path(row))
        return self._sizes[row]

    def encode_upload(self, image: ImageInput) -> UploadEncoding:
        """Decode, preprocess and encode an uploaded image once; cached by content hash (a few entries)."""
        data, label = image_bytes(image)
        key = hashlib.sha256(data).hexdigest()
        return self._uploads.get_or_compute(key, lambda: self._forward(data, label))

    def _forward(self, data: bytes, label: str) -> UploadEncoding:
        """One image forward: [3, crop, crop] -> global [D] and patches [h, w, D]."""
        loaded = load_image(data, name=label)
        batch = self.model.preprocess(loaded.image).unsqueeze(0)
        with self._model_lock:
            out = self.model.encode_images(batch)
        global_emb, patches = out.global_emb[0].numpy(), out.patches[0].numpy()
        global_emb.setflags(write=False)
        patches.setflags(write=False)
        return UploadEncoding(global_emb, patches, loaded.width, loaded.height)

    def _ground(self, patches: np.ndarray, global_emb: np.ndarray, width: int, height: int, text: str,
                interpolation: str) -> Grounding:
        """Grounding from patches [h, w, D] float32 and a global [D] embedding."""
        t = self.text_embedding(text)
        t_tensor = torch.from_numpy(np.array(t, dtype=np.float32))
        grid = G.smooth_grid(G.patch_similarity(torch.from_numpy(np.array(patches)), t_tensor).numpy())
        pp = self.bundle.preprocessing
        full = G.to_image_size(grid, width, height, pp.resize, pp.crop, interpolation)
        score = float(np.clip(np.dot(global_emb.astype(np.float32), t), -1.0, 1.0))
        return Grounding(map=full, grid=grid, score=score, width=width, height=height, text=text)

    def stored_patches(self, rows: Sequence[int]) -> np.ndarray:
        """Stored patch embeddings of ``rows`` as float32 [n, h, w, D]."""
        idx = [self.check_row(r) for r in rows]
        return np.asarray(self.bundle.patches()[idx], dtype=np.float32)

    def ground_case(self, row: int, text: str, interpolation: str = "bilinear") -> Grounding:
        """Ground ``text`` on bundle item ``row`` from its stored patches; map [height, width] of the original."""
        width, height = self.original_size(row)
        patches = self.stored_patches([row])[0]
        return self._ground(patches, self.image_vector(row), width, height, text, interpolation)

    def ground_image(self, image: ImageInput, text: str, interpolation: str = "bilinear") -> Grounding:
        """Ground ``text`` on an uploaded image (bytes, path or PIL); the forward is cached by content."""
        enc = self.encode_upload(image)
        return self._ground(enc.patches, enc.global_emb, enc.width, enc.height, text, interpolation)

    def grid_heatmaps(self, rows: Sequence[int], text: str) -> np.ndarray:
        """Smoothed grid maps [n, h, w] of ``text`` on many bundle items (one matmul, one batched filter)."""
        if len(rows) == 0:
            h, w = self.bundle.grid_shape
            return np.empty((0, h, w), dtype=np.float32)
        patches = torch.from_numpy(self.stored_patches(rows))
        return G.grid_maps(patches, torch.from_numpy(np.array(self.text_embedding(text), dtype=np.float32)))

    def grounded_report(self, row_or_image: int | ImageInput, report_text: str,
                        interpolation: str = "bilinear") -> list[SentenceGrounding]:
        """Clean and split ``report_text`` into sentences (:mod:`retrieval.text`), ground each on a bundle row (int)
        or an uploaded image.

        Sentences the text model rejects (e.g. only special tokens) are skipped with a log message.
        """
        out: list[SentenceGrounding] = []
        for i, sentence in enumerate(split_sentences(clean_text(report_text))):
            try:
                if _is_row(row_or_image):
                    g = self.ground_case(int(row_or_image), sentence, interpolation)  # type: ignore[arg-type]
                else:
                    g = self.ground_image(row_or_image, sentence, interpolation)  # type: ignore[arg-type]
            except TextInputError as exc:
                log.info("skipping sentence %d of the report: %s", i, exc)
                continue
            out.append(SentenceGrounding(index=i, text=sentence, score=g.score, grounding=g))
        return out

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unnormalised prompt embeddings [P, D] (cached per prompt set), as prompt averaging needs."""
        key = tuple(prompts)
        if not key:
            raise ValueError("a prompt set needs at least one prompt")

        def compute() -> torch.Tensor:
            with self._model_lock:
                return self.model.embed_texts(list(key), normalize=False)

        return self._prompt_cache.get_or_compute(key, compute)

    def zero_shot(self, row_or_image: int | ImageInput, positive: Sequence[str] = G.POSITIVE_PNEUMONIA_PROMPTS,
                  negative: Sequence[str] = G.NEGATIVE_PNEUMONIA_PROMPTS) -> G.ZeroShotScore:
        """Cosine similarities of an image's global embedding with the averaged positive / negative prompts."""
        if _is_row(row_or_image):
            emb = self.image_vector(int(row_or_image))  # type: ignore[arg-type]
        else:
            emb = self.encode_upload(row_or_image).global_emb  # type: ignore[arg-type]
        image = torch.from_numpy(np.array(emb, dtype=np.float32))
        return G.zero_shot_margin(image, self.prompt_embeddings(positive), self.prompt_embeddings(negative))


def _is_row(value: Any) -> bool:
    """True for an item row (int or numpy integer, not bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def recorded_size(metadata: pd.DataFrame, row: int) -> tuple[int, int] | None:
    """(width, height) from the metadata columns when both are present and positive."""
    if "width" not in metadata.columns or "height" not in metadata.columns:
        return None
    w, h = metadata["width"].iloc[row], metadata["height"].iloc[row]
    try:
        w_i, h_i = int(float(w)), int(float(h))
    except (TypeError, ValueError, OverflowError):
        return None
    return (w_i, h_i) if w_i > 0 and h_i > 0 else None


def file_size(path: os.PathLike[str] | str) -> tuple[int, int]:
    """Image size from the file header (PIL opens lazily); DICOM and odd files are decoded fully instead."""
    try:
        with Image.open(path, formats=_HEADER_FORMATS) as img:
            return int(img.width), int(img.height)
    except Exception:  # not PIL-readable (DICOM, ...): decode with the project loader, which raises cleanly
        loaded = load_image(path)
        return loaded.width, loaded.height
