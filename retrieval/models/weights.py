"""Find, verify and read released weight files: the Hugging Face hub (pinned revision, standard cache, HF_HOME and
HF_HUB_OFFLINE honoured) or a local ``--weights-dir`` laid out as ``huggingface-cli download REPO --local-dir DIR``.

Hub and cache files whose checksum differs from the released one are refused; a weights dir that differs loads with
a loud warning that is recorded in the model's identity. Nothing here ever falls back to random weights.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cxr_explorer.retrieval.models.registry import (
    TEXT_FILES_OPTIONAL,
    TEXT_FILES_REQUIRED,
    TEXT_WEIGHT_FILES,
    ModelSpec,
)

log = logging.getLogger(__name__)


class WeightsNotFoundError(RuntimeError):
    """No weights reachable: not online, not in the cache, not in the weights dir."""


class WeightsChecksumError(RuntimeError):
    """A downloaded or cached file differs from the released one."""


class WeightsFormatError(RuntimeError):
    """A weights file does not have the released layout (missing or unexpected keys, wrong shapes)."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Local paths of one model's files and how they were verified."""

    image_path: Path
    text_dir: Path
    source: str  # "hub" | "hf-cache" | "weights-dir"
    image_md5: str
    verified: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def how_to_get(spec: ModelSpec) -> str:
    """The three ways to make a model's weights available, as one sentence."""
    return (f"get them (1) online: run once with internet access to download {spec.hf_repo}@{spec.revision}; "
            f"(2) from a populated Hugging Face cache (HF_HOME, with HF_HUB_OFFLINE=1); or (3) with "
            f"`huggingface-cli download {spec.hf_repo} --revision {spec.revision} --local-dir DIR` on a connected "
            f"machine, then pass --weights-dir DIR")


def _text_weight_file(folder: Path) -> Path | None:
    for name in TEXT_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_from_dir(spec: ModelSpec, weights_dir: Path) -> ResolvedWeights:
    """Use a local folder holding the repo's files; a checksum mismatch warns loudly and marks it unverified."""
    assert spec.image_file is not None and spec.image_md5 is not None
    if not weights_dir.is_dir():
        raise WeightsNotFoundError(f"--weights-dir {weights_dir} is not a folder; {how_to_get(spec)}")
    missing = [n for n in (spec.image_file, *TEXT_FILES_REQUIRED) if not (weights_dir / n).is_file()]
    if _text_weight_file(weights_dir) is None:
        missing.append(" or ".join(TEXT_WEIGHT_FILES))
    if missing:
        raise WeightsNotFoundError(f"--weights-dir {weights_dir} lacks {', '.join(missing)} for model "
                                   f"{spec.name!r}; {how_to_get(spec)}")
    image_path = weights_dir / spec.image_file
    digest = md5sum(image_path)
    warnings: tuple[str, ...] = ()
    if digest != spec.image_md5:
        msg = (f"WEIGHTS NOT VERIFIED: {image_path} has md5 {digest}, the released {spec.name} file has "
               f"{spec.image_md5}; results will not be BioViL's")
        log.warning(msg)
        warnings = (msg,)
    return ResolvedWeights(image_path, weights_dir, "weights-dir", digest, digest == spec.image_md5, warnings)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _download(spec: ModelSpec, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    assert spec.hf_repo is not None
    return Path(hf_hub_download(spec.hf_repo, filename, revision=spec.revision))


def _download_text(spec: ModelSpec) -> Path:
    from huggingface_hub.errors import EntryNotFoundError

    _download(spec, TEXT_FILES_REQUIRED[0])
    for name in TEXT_FILES_REQUIRED[1:]:
        _download(spec, name)
    for name in TEXT_FILES_OPTIONAL:
        try:
            _download(spec, name)
        except EntryNotFoundError:
            pass
    for name in TEXT_WEIGHT_FILES:
        try:
            return _download(spec, name).parent
        except EntryNotFoundError:
            continue
    raise WeightsNotFoundError(f"{spec.hf_repo}@{spec.revision} has none of {TEXT_WEIGHT_FILES}")


def resolve_from_hub(spec: ModelSpec) -> ResolvedWeights:
    """Download (or read from the cache) at the pinned revision; refuse files whose checksum differs."""
    assert spec.image_file is not None and spec.image_md5 is not None
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        image_path = _download(spec, spec.image_file)
        text_dir = _download_text(spec)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        where = "the Hugging Face cache (HF_HUB_OFFLINE is set)" if _offline() else "the hub or the cache"
        raise WeightsNotFoundError(f"the weights of {spec.name!r} are not in {where} ({type(exc).__name__}); "
                                   f"{how_to_get(spec)}") from None
    digest = md5sum(image_path)
    if digest != spec.image_md5:
        raise WeightsChecksumError(f"{image_path} has md5 {digest} but the released {spec.name} file "
                                   f"{spec.image_file} has md5 {spec.image_md5}; delete it and download again")
    return ResolvedWeights(image_path, text_dir, "hf-cache" if _offline() else "hub", digest, True)


def resolve_weights(spec: ModelSpec, weights_dir: str | os.PathLike[str] | None = None) -> ResolvedWeights:
    """Resolve a real model's files from ``weights_dir`` if given, else from the hub/cache."""
    if not spec.is_real:
        raise ValueError(f"{spec.name!r} has no weight files")
    return resolve_from_dir(spec, Path(weights_dir)) if weights_dir is not None else resolve_from_hub(spec)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file, or a pickled state dict with ``torch.load(weights_only=True)``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zips, non-tensor payloads
        raise WeightsFormatError(f"cannot read {path} as a weights-only state dict: {exc}") from None
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    return obj
