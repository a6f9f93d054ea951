"""Our encoders vs Microsoft's reference (hi-ml-multimodal 0.2.2) on identical seeded weights.

The fixture was written by ``tests/reference/generate_fixture.py`` running the reference in its own virtualenv
(versions in ``fixture_meta.json``). Here we regenerate the same weights by key name, load them into OUR classes and
require max |difference| <= 1e-5 on every output. The inputs are three real images from ``../shared/data``.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval.grounding import global_prompt_score, patch_similarity, similarity_map, smooth_grid
from retrieval.imageio import load_image
from retrieval.models.api import ModelIdentity, VLModel
from retrieval.models.image_model import ImageModel
from retrieval.models.registry import TextDims, get_spec
from retrieval.models.seeded import seeded_state_dict
from retrieval.models.text_model import CXRBertModel, TextTokenizer, bert_config

REF = Path(__file__).parent / "reference"
META = json.loads((REF / "fixture_meta.json").read_text())
FIX = np.load(REF / "fixture.npz")
IMAGES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "covid_chestxray" / "images"
ATOL = 1e-5
MODELS = {"biovil": "biovil", "biovil_t": "biovil-t"}

if not IMAGES_DIR.is_dir():
    if os.environ.get("CI"):
        raise RuntimeError(f"the reference-equivalence test must run in CI but {IMAGES_DIR} is missing")
    pytest.skip(f"../shared/data is absent ({IMAGES_DIR}); the reference images live there", allow_module_level=True)


@lru_cache(maxsize=1)
def text_parts() -> tuple[CXRBertModel, TextTokenizer]:
    """Our CXR-BERT with the reference's test config and the seeded weights."""
    cfg = META["text_config"]
    dims = TextDims(**{k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                           "intermediate_size", "max_position_embeddings")})
    model = CXRBertModel(bert_config(dims), projection_size=cfg["projection_size"])
    seeded = seeded_state_dict(model.state_dict(), salt=META["salts"]["text"])
    assert len(seeded) == META["text_seeded_keys"], "our text key count differs from the reference's"
    assert all(k.startswith(("bert.", "cls_projection_head.")) for k in seeded)
    model.load_state_dict(seeded, strict=True)
    return model.eval(), TextTokenizer.from_vocab(REF / "test_vocab.txt", do_lower_case=True)


@lru_cache(maxsize=2)
def vl_model(key: str) -> VLModel:
    """A VLModel whose image tower carries the reference's seeded image weights."""
    spec = get_spec(MODELS[key])
    image = ImageModel(spec)
    image.load_state_dict(seeded_state_dict(image.state_dict(), salt=META["salts"][key]), strict=True)
    text, tok = text_parts()
    ident = ModelIdentity(spec.name, None, None, False, "test-seeded", False)
    return VLModel(spec, image, text, tok, ident, torch.device("cpu"))


def maxdiff(ours: np.ndarray | torch.Tensor, ref: np.ndarray) -> float:
    a = ours.detach().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    return float(np.nanmax(np.abs(a.astype(np.float64) - ref.astype(np.float64))))


def test_fixture_records_reference_versions() -> None:
    versions = META["versions"]
    assert versions["hi-ml-multimodal"] == "0.2.2"
    assert versions["transformers"].startswith("4.57")


def test_tokenisation_matches_reference() -> None:
    _, tok = text_parts()
    ids, mask = tok(META["phrases"])
    assert np.array_equal(ids.numpy(), FIX["text/input_ids"])
    assert np.array_equal(mask.numpy(), FIX["text/attention_mask"])
    ids, mask = tok(META["extra_tokenisation"])
    assert np.array_equal(ids.numpy(), FIX["text/extra_input_ids"])
    assert np.array_equal(mask.numpy(), FIX["text/extra_attention_mask"])


def test_text_embeddings_match_reference() -> None:
    model = vl_model("biovil")
    assert maxdiff(model.embed_texts(META["phrases"]), FIX["text/embeddings"]) <= ATOL
    assert maxdiff(model.embed_texts(META["phrases"], normalize=False), FIX["text/embeddings_unnorm"]) <= ATOL
    assert maxdiff(model.embed_texts(META["positive_prompts"], normalize=False),
                   FIX["text/positive_embeddings_unnorm"]) <= ATOL


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("image_name", META["images"])
def test_image_outputs_match_reference(key: str, image_name: str) -> None:
    model = vl_model(key)
    prefix = f"{key}/{image_name}"
    loaded = load_image(IMAGES_DIR / image_name)
    assert (loaded.width, loaded.height) == tuple(FIX[f"{prefix}/orig_size"])
    x = model.preprocess(loaded.image)
    ref_x = torch.from_numpy(FIX[f"{prefix}/input_u8"]).float().div(255)
    assert x.shape == (3, *ref_x.shape) and maxdiff(x, ref_x.expand(3, -1, -1).numpy()) == 0.0
    emb = model.encode_images(x.unsqueeze(0))
    assert maxdiff(emb.global_emb[0], FIX[f"{prefix}/global"]) <= ATOL
    assert maxdiff(emb.patches[0], FIX[f"{prefix}/patch"]) <= ATOL
    grid_ref = FIX[f"{prefix}/sim_grid"]
    text = torch.from_numpy(FIX["text/grounding_embedding"])
    assert maxdiff(smooth_grid(patch_similarity(emb.patches[0], text).numpy()), grid_ref) <= ATOL
    pos = model.embed_texts(META["positive_prompts"], normalize=False)
    neg = model.embed_texts(META["negative_prompts"], normalize=False)
    assert abs(global_prompt_score(emb.global_emb[0], pos) - float(FIX[f"{prefix}/score_pos"])) <= ATOL
    assert abs(global_prompt_score(emb.global_emb[0], neg) - float(FIX[f"{prefix}/score_neg"])) <= ATOL


@pytest.mark.parametrize("key", list(MODELS))
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_similarity_map_matches_reference(key: str, interpolation: str) -> None:
    """End to end as ``get_similarity_map_from_raw_data``: image file + phrase -> map at the image's size."""
    model = vl_model(key)
    name = META["full_map_image"]
    loaded = load_image(IMAGES_DIR / name)
    patches = model.embed_patches(model.preprocess(loaded.image).unsqueeze(0))[0]
    text = model.embed_texts([META["grounding_phrase"]])
    ours = similarity_map(patches, text, loaded.width, loaded.height, model.spec.resize, model.spec.crop,
                          interpolation=interpolation)
    ref = FIX[f"{key}/{name}/sim_map_{interpolation}"]
    assert ours.shape == ref.shape
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "NaN (outside the crop) regions differ"
    assert maxdiff(ours, ref) <= ATOL


def test_reference_images_are_distinguishable_at_this_tolerance() -> None:
    """Guard against a vacuous comparison: the seeded model must map different images further apart than ATOL."""
    for key in MODELS:
        a, b = (FIX[f"{key}/{n}/patch"] for n in META["images"][:2])
        assert np.abs(a - b).max() > 100 * ATOL
