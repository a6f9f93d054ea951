"""Generate ``fixture.npz`` / ``fixture_meta.json`` from the REFERENCE hi-ml-multimodal 0.2.2 implementation.

Run from the repository root with the reference virtualenv (see ``README.md`` next to this file)::

    .venv-ref/bin/python tests/reference/generate_fixture.py

The reference BioViL / BioViL-T image models and the CXR-BERT text model are built with deterministic weights from
``retrieval/models/seeded.py`` (same key names as our re-implementation, so both sides get identical tensors), and
the reference's own public inference engines are run on three real images of ``../shared`` and a few phrases.
Everything stored is an output of a reference call; how each key maps to a call is written into
``fixture_meta.json["keys"]`` and ``README.md``.  Images are referenced by file name only, never copied.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata as md
import importlib.util
import json
import logging
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

# --- torchvision shim ------------------------------------------------------------------------------------------------
# The torchvision wheel in .venv-ref (0.28.0, a CUDA 13 build) cannot load its ``_C`` extension next to torch+cpu, so
# its ``_meta_registrations`` module fails at import with "operator torchvision::nms does not exist".  Declaring the
# two operator schemas it registers fake kernels for (copied from torchvision's C++ registration) lets the import
# proceed.  No torchvision C++ op is ever called here (only PIL Resize/CenterCrop/ToTensor).  Keep ``_TV_LIB`` alive.
_TV_LIB = torch.library.Library("torchvision", "DEF")
_TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_TV_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

from health_multimodal.image import ImageInferenceEngine, ImageModel  # noqa: E402
from health_multimodal.image.data.io import load_image  # noqa: E402
from health_multimodal.image.data.transforms import create_chest_xray_transform_for_inference  # noqa: E402
from health_multimodal.image.model.types import ImageEncoderType  # noqa: E402
from health_multimodal.text import TextInferenceEngine  # noqa: E402
from health_multimodal.text.model import CXRBertConfig, CXRBertModel, CXRBertTokenizer  # noqa: E402
from health_multimodal.vlp import ImageTextInferenceEngine  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "reference"
VOCAB = OUT_DIR / "test_vocab.txt"
IMAGES_REL = "../shared/data/covid_chestxray/images"  # relative to the repository root
IMAGE_DIR = (REPO / IMAGES_REL).resolve()

_spec = importlib.util.spec_from_file_location("seeded", REPO / "retrieval" / "models" / "seeded.py")
seeded = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(seeded)

SALTS = {"biovil": "biovil-image", "biovil_t": "biovil-t-image", "text": "cxr-bert-text"}
IMAGE_MODELS = {  # name -> (encoder type, resize, center crop), as in health_multimodal.image.utils
    "biovil": (ImageEncoderType.RESNET50.value, 512, 480),
    "biovil_t": (ImageEncoderType.RESNET50_MULTI_IMAGE.value, 512, 448),
}
TEXT_CONFIG = dict(vocab_size=None, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                   intermediate_size=3072, hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2,
                   layer_norm_eps=1e-12, pad_token_id=0, projection_size=128, hidden_dropout_prob=0.25,
                   attention_probs_dropout_prob=0.25)
POSITIVE = ["Findings consistent with pneumonia", "Findings suggesting pneumonia",
            "This opacity can represent pneumonia", "Findings are most compatible with pneumonia"]
NEGATIVE = ["There is no pneumonia", "No evidence of pneumonia", "No evidence of acute pneumonia",
            "No signs of pneumonia"]
PHRASES = ["Left basilar consolidation seen.", "No evidence of pneumonia", "Findings consistent with pneumonia!",
           "There is a small right pleural effusion?", "bilateral lower lobe opacities", "Cardiomegaly"]
PHRASES = PHRASES + POSITIVE + NEGATIVE
GROUNDING_PHRASE = "Left basilar consolidation seen"
# Tokenisation-only edge cases (WordPiece suffix splits, [UNK], accents, punctuation, [MASK], whitespace).
EXTRA_TOKENISATION = ["Basilarly pleuraling edemas.", "left>right 3.5cm effusion!?",
                      "\u00dcnknown \u00f8 \u2014 opacity",
                      "No [MASK] effusion", "  Multiple   spaces\tand\nnewlines  "]

fixture: dict[str, np.ndarray] = {}
doc: dict[str, str] = {}  # fixture key (pattern) -> reference call that produced it


def put(key: str, value, how: str, pattern: str | None = None) -> None:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    assert key not in fixture, key
    if arr.dtype.kind == "f":
        assert np.isfinite(arr).all() or "sim_map" in key, f"non-finite values in {key}"
    fixture[key] = arr
    doc.setdefault(pattern or key, how)


def FULL_MAP(images: list[str]) -> str:  # noqa: N802 - a rule, named like the constants around it
    """Full-size maps are stored for the first image (373x361, non-square, the one that is upscaled): the smallest,
    which keeps fixture.npz small, and the one that exercises upscaling and odd NaN margins."""
    return images[0]


def pick_images() -> list[str]:
    """Deterministic choice by sorted file name: (a) the first file, (b) the first stored as RGB (landscape,
    exercises load_image's RGB->L path; full similarity maps are stored for it), (c) the first portrait image
    (height > width) whose short side is 512, the data set's typical size (padding along the other axis).
    The data set has no PNG and no short side above 512 (it was prepared capped at 512), so (b) and (c) take
    torchvision's same-size Resize path and (a) the upscaling path."""
    from PIL import Image
    names = sorted(os.listdir(IMAGE_DIR))
    modes_sizes = {}
    for n in names:
        with Image.open(IMAGE_DIR / n) as im:  # reads the header only
            modes_sizes[n] = (im.mode, im.size)
    first = names[0]
    rgb = next(n for n in names if modes_sizes[n][0] == "RGB")
    portrait = next(n for n in names if modes_sizes[n][1][1] > modes_sizes[n][1][0] and min(modes_sizes[n][1]) == 512)
    assert len({first, rgb, portrait}) == 3 and modes_sizes[rgb][1][0] != modes_sizes[rgb][1][1]
    return [first, rgb, portrait]


def build_text() -> tuple[TextInferenceEngine, list[str], dict]:
    tokenizer = CXRBertTokenizer(vocab_file=str(VOCAB), do_lower_case=True)
    config = dict(TEXT_CONFIG, vocab_size=len(tokenizer.vocab))
    model = CXRBertModel(CXRBertConfig(**config))
    template = {k: v for k, v in model.state_dict().items()
                if k.startswith(("bert.", "cls_projection_head."))
                and not k.endswith(("position_ids", "token_type_ids"))}  # non-persistent in 4.57: never seeded
    state = seeded.seeded_state_dict(template, salt=SALTS["text"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("cls.predictions.") for k in missing), (missing, unexpected)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight  # tied, so seeded too
    model.eval()
    print(f"text: seeded {len(state)} keys (missing, left at HF init: {missing}):")
    print("  " + "\n  ".join(state))
    config["attn_implementation"] = model.config._attn_implementation
    return TextInferenceEngine(tokenizer, model), list(state), config


def build_image(name: str) -> tuple[ImageInferenceEngine, int]:
    encoder_type, resize, crop = IMAGE_MODELS[name]
    model = ImageModel(img_encoder_type=encoder_type, joint_feature_size=128)
    template = model.state_dict()
    model.load_state_dict(seeded.seeded_state_dict(template, salt=SALTS[name]), strict=True)
    model.eval()
    print(f"{name}: reference state_dict has {len(template)} keys")
    return ImageInferenceEngine(model, create_chest_xray_transform_for_inference(resize, crop)), len(template)


def run_text(engine: TextInferenceEngine) -> dict:
    tok = engine.tokenize_input_prompts(PHRASES, verbose=False)
    put("text/input_ids", tok.input_ids, "engine.tokenize_input_prompts(PHRASES).input_ids [N,L] (padding='longest')")
    put("text/attention_mask", tok.attention_mask, "same call, .attention_mask [N,L]")
    put("text/embeddings", engine.get_embeddings_from_prompt(PHRASES, verbose=False),
        "engine.get_embeddings_from_prompt(PHRASES) [N,128], L2-normalised")
    put("text/embeddings_unnorm", engine.get_embeddings_from_prompt(PHRASES, normalize=False, verbose=False),
        "engine.get_embeddings_from_prompt(PHRASES, normalize=False) [N,128]")
    put("text/grounding_embedding", engine.get_embeddings_from_prompt(GROUNDING_PHRASE, verbose=False),
        "engine.get_embeddings_from_prompt(GROUNDING_PHRASE) [1,128] (single prompt, no padding)")
    for name, prompts in (("positive", POSITIVE), ("negative", NEGATIVE)):
        emb = engine.get_embeddings_from_prompt(prompts, normalize=False, verbose=False)
        put(f"text/{name}_embeddings_unnorm", emb,
            f"engine.get_embeddings_from_prompt({name.upper()}, normalize=False) [4,128] (as used by the score)")
    extra = engine.tokenize_input_prompts(EXTRA_TOKENISATION, verbose=False)
    put("text/extra_input_ids", extra.input_ids, "engine.tokenize_input_prompts(EXTRA_TOKENISATION).input_ids")
    put("text/extra_attention_mask", extra.attention_mask, "same call, .attention_mask")
    conv = engine.tokenizer.convert_ids_to_tokens
    return {"phrases": [conv(r) for r in tok.input_ids.tolist()],
            "extra": [conv(r) for r in extra.input_ids.tolist()]}


def run_image(name: str, engine: ImageInferenceEngine, vlp: ImageTextInferenceEngine, text_emb: torch.Tensor,
              images: list[str], full_map_image: str) -> None:
    for img in images:
        path, p = IMAGE_DIR / img, f"{name}/{img}"
        pil = load_image(path)
        x = engine.transform(pil)  # [3, crop, crop] float32, values k/255
        u8 = torch.round(x[0] * 255).to(torch.uint8)
        assert torch.equal(x, u8.float().div(255).expand(3, -1, -1)), "preprocessed tensor is not exactly k/255 x3"
        put(f"{p}/input_u8", u8, "round(255 * engine.transform(load_image(path))[0]) uint8 [crop,crop]; the reference "
            "tensor == input_u8/255 (float32 division) repeated on 3 channels, exactly", "<model>/<image>/input_u8")
        put(f"{p}/orig_size", np.array(pil.size, dtype=np.int64), "load_image(path).size = (width, height)",
            "<model>/<image>/orig_size")
        put(f"{p}/global", engine.get_projected_global_embedding(path),
            "image_engine.get_projected_global_embedding(path) [128], L2-normalised", "<model>/<image>/global")
        patch, size = engine.get_projected_patch_embeddings(path)
        assert tuple(size) == pil.size
        put(f"{p}/patch", patch, "image_engine.get_projected_patch_embeddings(path)[0] [h,w,128], L2-normalised "
            "per patch", "<model>/<image>/patch")
        grid = ImageTextInferenceEngine._get_similarity_map_from_embeddings(patch, text_emb)
        put(f"{p}/sim_grid", grid, "ImageTextInferenceEngine._get_similarity_map_from_embeddings(patch, "
            "text/grounding_embedding) [h,w] (Gaussian-smoothed, sigma 1.5)", "<model>/<image>/sim_grid")
        put(f"{p}/score_pos", np.float64(vlp.get_similarity_score_from_raw_data(path, POSITIVE)),
            "vlp.get_similarity_score_from_raw_data(path, POSITIVE) scalar", "<model>/<image>/score_pos")
        put(f"{p}/score_neg", np.float64(vlp.get_similarity_score_from_raw_data(path, NEGATIVE)),
            "vlp.get_similarity_score_from_raw_data(path, NEGATIVE) scalar", "<model>/<image>/score_neg")
        if img != full_map_image:
            continue
        for interp in ("nearest", "bilinear"):
            m = vlp.get_similarity_map_from_raw_data(path, GROUNDING_PHRASE, interpolation=interp)
            assert m.shape == (pil.size[1], pil.size[0]) and np.isfinite(m).any()
            again = ImageTextInferenceEngine.convert_similarity_to_image_size(
                grid, pil.size[0], pil.size[1], engine.resize_size, engine.crop_size, engine.transform, interp)
            assert np.array_equal(m, again, equal_nan=True), "map differs from the one rebuilt from sim_grid"
            put(f"{p}/sim_map_{interp}", m.astype(np.float32), f"vlp.get_similarity_map_from_raw_data(path, "
                f"GROUNDING_PHRASE, interpolation='{interp}') [H_orig,W_orig], NaN outside the crop; only for the "
                "RGB (second) image", f"<model>/<image>/sim_map_{interp}")


def versions() -> dict:
    v = {"python": platform.python_version()}
    for dist in ("torch", "torchvision", "transformers", "tokenizers", "hi-ml-multimodal", "timm", "numpy", "scipy",
                 "scikit-image", "pillow", "pydicom", "SimpleITK"):
        v[dist] = md.version(dist)
    return v


def main() -> None:
    torch.manual_seed(0)  # only affects weights we overwrite / never use (HF init of cls.predictions.*)
    torch.set_num_threads(2)
    logging.basicConfig(level=logging.WARNING)
    images = pick_images()
    print("images:", images)
    text_engine, text_keys, text_config = build_text()
    tokens = run_text(text_engine)
    text_emb = torch.from_numpy(fixture["text/grounding_embedding"])
    n_keys = {}
    for name in IMAGE_MODELS:
        engine, n_keys[name] = build_image(name)
        run_image(name, engine, ImageTextInferenceEngine(engine, text_engine), text_emb, images, FULL_MAP(images))
    # Sanity: every L2-normalised output has unit norm.
    for k, a in fixture.items():
        if k.endswith(("/global", "/patch")) or k in ("text/embeddings", "text/grounding_embedding"):
            assert np.allclose(np.linalg.norm(a.astype(np.float64), axis=-1), 1.0, atol=1e-5), k
    # How strongly the outputs depend on the image: with the seeded weights it is weak (see README), so the
    # comparing test must use tolerances well below these spreads.
    spread = {f"{n}/{a}": float(max(np.abs(fixture[f"{n}/{images[i]}/{a}"] - fixture[f"{n}/{images[i + 1]}/{a}"]).max()
                                    for i in range(len(images) - 1)))
              for n in IMAGE_MODELS for a in ("global", "patch", "sim_grid", "score_pos")}
    print("max |difference| between consecutive images:", spread)
    npz = OUT_DIR / "fixture.npz"
    np.savez_compressed(npz, **fixture)
    with np.load(npz) as back:  # round trip, keys containing '/' and '.' included
        assert sorted(back.files) == sorted(fixture) and all(np.array_equal(back[k], fixture[k], equal_nan=True)
                                                            for k in fixture)
    meta = {
        "command": ".venv-ref/bin/python tests/reference/generate_fixture.py  (from the repository root)",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(), "torch_num_threads": torch.get_num_threads(), "versions": versions(),
        "images_dir": IMAGES_REL, "images": images, "full_map_image": FULL_MAP(images),
        "image_sha256": {n: hashlib.sha256((IMAGE_DIR / n).read_bytes()).hexdigest() for n in images},
        "salts": SALTS,
        "image_models": {n: {"img_encoder_type": t, "joint_feature_size": 128, "resize": r, "center_crop": c,
                             "state_dict_keys": n_keys[n]} for n, (t, r, c) in IMAGE_MODELS.items()},
        "text_config": text_config, "vocab_file": "tests/reference/test_vocab.txt",
        "vocab_size": text_config["vocab_size"],
        "tokenizer": "CXRBertTokenizer(vocab_file=test_vocab.txt, do_lower_case=True)",
        "text_seeded_keys": len(text_keys),
        "phrases": PHRASES, "positive_prompts": POSITIVE, "negative_prompts": NEGATIVE,
        "grounding_phrase": GROUNDING_PHRASE, "extra_tokenisation": EXTRA_TOKENISATION, "tokens": tokens,
        "inter_image_max_abs_diff": spread, "keys": doc,
        "shapes": {k: [list(a.shape), str(a.dtype)] for k, a in fixture.items()},
    }
    (OUT_DIR / "fixture_meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {npz} ({npz.stat().st_size / 1e6:.2f} MB, {len(fixture)} arrays) and fixture_meta.json")


if __name__ == "__main__":
    sys.exit(main())
