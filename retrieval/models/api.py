"""The one factory: ``load_model(name)`` returns ready encoders together with their preprocessing.

The index job, the CLI and the app all embed through :class:`VLModel`, so indexing and querying never disagree.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from PIL import Image

from cxr_explorer.retrieval.inputs.preprocess import Preprocessing
from cxr_explorer.retrieval.models.fastpath import bf16_matmul_weights, can_pack
from cxr_explorer.retrieval.models.image_model import ImageEmbeddings, ImageModel
from cxr_explorer.retrieval.models.loading import build_tiny, load_image_model, load_text_model
from cxr_explorer.retrieval.models.precision import Precision, resolve_precision
from cxr_explorer.retrieval.models.registry import ModelSpec, get_spec
from cxr_explorer.retrieval.models.text_fast import FastTextTower
from cxr_explorer.retrieval.models.text_model import CXRBertModel, TextTokenizer
from cxr_explorer.retrieval.models.weights import resolve_weights

log = logging.getLogger(__name__)
TextTower = CXRBertModel | FastTextTower
"""A text encoder with ``project(ids, mask)``: the plain tower, or its lean bf16 CPU forward (``text_fast``)."""


@dataclass(frozen=True)
class ModelIdentity:
    """What a bundle records about the model that embedded it, and what the query side checks."""

    name: str
    revision: str | None
    image_md5: str | None
    verified: bool
    source: str
    is_real: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


class VLModel:
    """Image and text encoders of one model plus the preprocessing they were trained with.

    All embeddings are L2-normalised and live in the joint space of width ``spec.joint_dim`` (128).
    """

    def __init__(self, spec: ModelSpec, image_model: ImageModel, text_model: CXRBertModel, tokenizer: TextTokenizer,
                 identity: ModelIdentity, device: torch.device, precision: Precision = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r}; use fp32 or bf16")
        self.spec = spec
        self.identity = identity
        self.device = device
        self.precision: Precision = precision
        self.preprocessing = Preprocessing(resize=spec.resize, crop=spec.crop)
        self.image_model = image_model.to(device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.text_model: TextTower = text_model.to(device).eval()
        self.tokenizer = tokenizer
        if precision == "bf16":  # loaded for bf16: cast the matmul weights once, in place (fastpath docstring)
            bf16_matmul_weights(self.image_model, in_place=True)
            self.text_model = self._bf16_text(text_model, in_place=True)
        self._loaded_as: Precision = precision
        self._bf16_towers: tuple[ImageModel, TextTower] | None = None

    def towers(self) -> tuple[ImageModel, TextTower]:
        """(image, text) encoders for the current ``precision``; an fp32 model switched to bf16 gets bf16 copies."""
        if self.precision == self._loaded_as:
            return self.image_model, self.text_model
        if self.precision == "bf16":
            if self._bf16_towers is None:
                assert isinstance(self.text_model, CXRBertModel)  # loaded as fp32: the plain tower
                self._bf16_towers = (bf16_matmul_weights(self.image_model), self._bf16_text(self.text_model))
            return self._bf16_towers
        raise RuntimeError("this model was loaded in bf16 (weights cast once); load it again with precision fp32")

    def _bf16_text(self, tower: CXRBertModel, in_place: bool = False) -> TextTower:
        """The text tower for bf16: the lean forward with packed weights where the CPU allows (``text_fast``; it
        shares the embeddings and LayerNorms with ``tower`` and copies nothing else), else Linears cast to bf16."""
        if can_pack(self.device):
            fast = FastTextTower(tower)
            log.info("bf16 text path: bf16-fused-gelu (oneDNN packed Linears, GELU in the matmul); warmed up in %.2f s",
                     fast.warm_up())
            return fast
        log.info("bf16 text path: bf16 (Linears cast once; no oneDNN packed bf16 Linear on this CPU or torch)")
        return bf16_matmul_weights(tower, in_place)

    @property
    def patch_grid(self) -> tuple[int, int]:
        """(h, w) of ``encode_images``' patches for preprocessed [N, 3, crop, crop] input (14x14 at 448 px)."""
        crop = self.preprocessing.crop
        return self.image_model.grid(crop, crop)

    @property
    def text_path(self) -> str:
        """The text forward queries run now: ``fp32``, ``bf16`` (Linears cast once) or ``bf16-fused-gelu`` (the lean
        forward of :mod:`retrieval.models.text_fast`, packed Linears with the GELU in its matmul)."""
        if self.precision == "fp32":
            return "fp32"
        return "bf16-fused-gelu" if isinstance(self.towers()[1], FastTextTower) else "bf16"

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        with torch.inference_mode():
            if self.precision == "bf16":
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                    yield
            else:
                yield

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL "L" image -> [3, crop, crop] float32 in [0, 1] (the reference's inference transform)."""
        return self.preprocessing(image)

    def encode_images(self, batch: torch.Tensor, previous: torch.Tensor | None = None) -> ImageEmbeddings:
        """[N, 3, crop, crop] -> global [N, D] and patches [N, h, w, D] from ONE forward pass (float32, CPU)."""
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected images [N, 3, H, W], got {tuple(batch.shape)}")
        x = batch.to(self.device).contiguous(memory_format=torch.channels_last)
        prev = previous.to(self.device).contiguous(memory_format=torch.channels_last) if previous is not None else None
        with self._autocast():
            out = self.towers()[0](x, prev)
        g, p = out.global_emb.float(), out.patches.float()
        g, p = torch.nn.functional.normalize(g, dim=-1), torch.nn.functional.normalize(p, dim=-1)
        return ImageEmbeddings(global_emb=g.cpu(), patches=p.cpu())

    def embed_images(self, batch: torch.Tensor) -> torch.Tensor:
        """[N, 3, crop, crop] -> [N, D] L2-normalised global embeddings."""
        return self.encode_images(batch).global_emb

    def embed_patches(self, batch: torch.Tensor) -> torch.Tensor:
        """[N, 3, crop, crop] -> [N, h, w, D] L2-normalised patch embeddings."""
        return self.encode_images(batch).patches

    def embed_texts(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        """N strings -> [N, D] embeddings (L2-normalised unless ``normalize=False``, as prompt averaging needs)."""
        ids, mask = self.tokenizer(list(texts))
        with self._autocast():
            proj = self.towers()[1].project(ids.to(self.device), mask.to(self.device))
        proj = proj.float()
        return (torch.nn.functional.normalize(proj, dim=1) if normalize else proj).cpu()


def load_model(name: str, weights_dir: str | os.PathLike[str] | None = None, device: str = "auto",
               precision: str = "fp32") -> VLModel:
    """Build a ready model by registry name.

    Real models load released files from ``weights_dir`` or the hub/cache (see :mod:`retrieval.models.weights`) and
    raise if none are reachable; ``tiny-random`` is the only way to get random weights, and it says so loudly.
    ``precision`` is fp32, bf16 or auto (bf16 where the device has native bf16, :mod:`retrieval.models.precision`).
    """
    return build_model(get_spec(name), weights_dir, device, precision)


def build_model(spec: ModelSpec, weights_dir: str | os.PathLike[str] | None = None, device: str = "auto",
                precision: str = "fp32") -> VLModel:
    """Build a ready model from a spec (``load_model`` looks the spec up by name)."""
    dev = pick_device(device)
    prec = resolve_precision(precision, dev)
    if not spec.is_real:
        if weights_dir is not None:
            raise ValueError(f"{spec.name!r} is a synthetic test model and takes no --weights-dir")
        image, text, tok = build_tiny(spec)
        identity = ModelIdentity(spec.name, None, None, False, "seeded-random", False,
                                 (f"{spec.name} is NOT A REAL MODEL: random weights",))
        return VLModel(spec, image, text, tok, identity, dev, prec)
    files = resolve_weights(spec, weights_dir)
    image = load_image_model(spec, files.image_path)
    text, tok, text_warnings = load_text_model(files.text_dir, spec.joint_dim)
    identity = ModelIdentity(spec.name, spec.revision, files.image_md5, files.verified, files.source, True,
                             (*files.warnings, *text_warnings))
    return VLModel(spec, image, text, tok, identity, dev, prec)
