"""Query encoding with one model: cached text embeddings, one cached forward per uploaded image, prompt embeddings.

A :class:`QueryEncoder` owns the model lock and the caches; the engine's search and the
:class:`retrieval.grounding.grounder.Grounder` share one encoder (as hi-ml's ``ImageTextInferenceEngine`` holds a text
and an image inference engine), so a phrase or an upload is encoded once whichever asks first.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
import torch
from PIL import Image

from cxr_explorer.retrieval.inputs.images import ImageLoadError, load_image
from cxr_explorer.retrieval.inputs.text_embedding import embed_windows, encoder_text, mean_renormalised, plan_text

if TYPE_CHECKING:
    from cxr_explorer.retrieval.models import VLModel

ImageInput = bytes | str | os.PathLike[str] | Image.Image
"""An image given by the user: encoded bytes, a file path or a PIL image (never a bundle row or id)."""
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

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data


@dataclass(frozen=True)
class UploadEncoding:
    """One uploaded image after its single forward: global [D], patches [h, w, D] (float32), original size."""

    global_emb: np.ndarray
    patches: np.ndarray
    width: int
    height: int


def image_bytes(image: ImageInput) -> tuple[bytes, str]:
    """Raw bytes and a label for an upload: bytes as given, a path read once, a PIL image saved as PNG.

    An unreadable path raises the precise :class:`retrieval.inputs.images.ImageLoadError` (missing, empty, ...).
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


def _same(value: np.ndarray) -> np.ndarray:
    return value


class QueryEncoder:
    """Text and image queries through one model, forwards serialised by ``lock`` and results cached.

    :param text_cache: how many text embeddings to keep; ``upload_cache`` uploads; ``prompt_cache`` prompt sets.
    """

    def __init__(self, model: VLModel, text_cache: int = 512, upload_cache: int = 4, prompt_cache: int = 16) -> None:
        self.model = model
        self.lock = threading.RLock()
        self._texts: LRU[str, np.ndarray] = LRU(text_cache)
        self._uploads: LRU[str, UploadEncoding] = LRU(upload_cache)
        self._prompts: LRU[tuple[str, ...], torch.Tensor] = LRU(prompt_cache)

    def text_embedding(self, text: str) -> np.ndarray:
        """L2-normalised [D] float32 embedding of ``text`` (LRU-cached by its encoder form, read-only), planned and
        combined as the offline job embeds reports (:mod:`retrieval.inputs.text_embedding`): windows of sentences
        when over the encoder's limit."""
        key = encoder_text(text)

        def compute() -> np.ndarray:
            tok = self.model.tokenizer
            plan = plan_text(key, tok.count_tokens, tok.max_length)
            with self.lock:
                emb = embed_windows(plan.windows, lambda ws: self.model.embed_texts(ws).numpy())
            emb.setflags(write=False)
            return emb

        return self._texts.get_or_compute(key, compute)

    def text_embeddings(self, texts: Sequence[str]) -> list[np.ndarray]:
        """:meth:`text_embedding` of each text; the uncached ones that fit one encoder window are encoded together in
        one forward first (a composed query's phrases cost about one forward, not one each)."""
        tok = self.model.tokenizer
        keys = list(dict.fromkeys(encoder_text(t) for t in texts))
        todo = [k for k in keys if k and k not in self._texts and tok.count_tokens(k) <= tok.max_length]
        if len(todo) > 1:
            with self.lock:
                rows = self.model.embed_texts(todo).numpy()
            for key, row in zip(todo, rows, strict=True):
                emb = mean_renormalised(row[None])  # as embed_windows combines one window
                emb.setflags(write=False)
                self._texts.get_or_compute(key, partial(_same, emb))
        return [self.text_embedding(t) for t in texts]

    def text_windows(self, text: str) -> tuple[int, int]:
        """(how many windows ``text`` is embedded as, the encoder's token limit): 1 window when it fits."""
        tok = self.model.tokenizer
        return len(plan_text(encoder_text(text), tok.count_tokens, tok.max_length).windows), int(tok.max_length)

    def encode_upload(self, image: ImageInput) -> UploadEncoding:
        """Decode, preprocess and encode an image once; cached by content hash (a few entries)."""
        data, label = image_bytes(image)
        key = hashlib.sha256(data).hexdigest()
        return self._uploads.get_or_compute(key, lambda: self._forward(data, label))

    def image_embedding(self, image: ImageInput) -> np.ndarray:
        """L2-normalised global [D] embedding of an image (one cached forward)."""
        return self.encode_upload(image).global_emb

    def _forward(self, data: bytes, label: str) -> UploadEncoding:
        """One image forward: [3, crop, crop] -> global [D] and patches [h, w, D]."""
        loaded = load_image(data, name=label)
        batch = self.model.preprocess(loaded.image).unsqueeze(0)
        with self.lock:
            out = self.model.encode_images(batch)
        global_emb, patches = out.global_emb[0].numpy(), out.patches[0].numpy()
        global_emb.setflags(write=False)
        patches.setflags(write=False)
        return UploadEncoding(global_emb, patches, loaded.width, loaded.height)

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unnormalised prompt embeddings [P, D] (cached per prompt set), as prompt averaging needs."""
        key = tuple(prompts)
        if not key:
            raise ValueError("a prompt set needs at least one prompt")

        def compute() -> torch.Tensor:
            with self.lock:
                return self.model.embed_texts(list(key), normalize=False)

        return self._prompts.get_or_compute(key, compute)

    def prompt_set_embeddings(self, sets: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One [D] float32 vector per prompt set: the L2-normalised mean of its unnormalised prompt embeddings (as
        hi-ml's ``get_similarity_score``); all prompts in one forward, cached as one prompt set."""
        if any(not prompts for prompts in sets):
            raise ValueError("a prompt set needs at least one prompt")
        emb = self.prompt_embeddings([p for prompts in sets for p in prompts]).numpy()
        bounds = np.cumsum([0, *(len(prompts) for prompts in sets)])
        return [mean_renormalised(emb[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
