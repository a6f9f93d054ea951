"""Print max |ours - reference| of every output ``tests/reference/test_equivalence.py`` compares (the figures in
``README.md`` next to this file). From the repository root:
``.venv/bin/python -m tests.reference.measure_differences`` (real-size seeded models on CPU: about a minute)."""

from __future__ import annotations

import torch

from cxr_explorer.retrieval.grounding.maps import patch_similarity, similarity_map, smooth_grid
from cxr_explorer.retrieval.inputs.images import load_image
from tests.reference import test_equivalence as equivalence


def measure() -> dict[str, float]:
    """Output name -> largest difference over the images and both models (patch grids where stored)."""
    out: dict[str, float] = {}

    def record(name: str, value: float) -> None:
        out[name] = max(out.get(name, 0.0), value)

    fix, meta, maxdiff = equivalence.FIX, equivalence.META, equivalence.maxdiff
    text_model = equivalence.vl_model("biovil")
    record("text/embeddings", maxdiff(text_model.embed_texts(meta["phrases"]), fix["text/embeddings"]))
    record("text/embeddings_unnorm", maxdiff(text_model.embed_texts(meta["phrases"], normalize=False),
                                             fix["text/embeddings_unnorm"]))
    grounding_text = torch.from_numpy(fix["text/grounding_embedding"])
    for key in equivalence.MODELS:
        model = equivalence.vl_model(key)
        for name in meta["images"]:
            emb = model.encode_images(model.preprocess(load_image(equivalence.IMAGES_DIR / name).image).unsqueeze(0))
            record("global", maxdiff(emb.global_emb[0], fix[f"{key}/{name}/global"]))
            if f"{key}/{name}/patch" in fix.files:
                record("patch", maxdiff(emb.patches[0], fix[f"{key}/{name}/patch"]))
            grid = smooth_grid(patch_similarity(emb.patches[0], grounding_text).numpy())
            record("sim_grid", maxdiff(grid, fix[f"{key}/{name}/sim_grid"]))
        name = meta["full_map_image"]
        loaded = load_image(equivalence.IMAGES_DIR / name)
        patches = model.embed_patches(model.preprocess(loaded.image).unsqueeze(0))[0]
        phrase = model.embed_texts([meta["grounding_phrase"]])
        for interp in ("nearest", "bilinear"):
            ours = similarity_map(patches, phrase, loaded.width, loaded.height, model.spec.resize, model.spec.crop,
                                  interpolation=interp)
            record("sim_map", maxdiff(ours, fix[f"{key}/{name}/sim_map_{interp}"]))
        for name in meta["float64_images"]:
            x = model.preprocess(load_image(equivalence.IMAGES_DIR / name).image).unsqueeze(0).double()
            with torch.no_grad():
                f64 = equivalence.image_model_f64(key)(x)
            record("global_f64", maxdiff(f64.global_emb[0], fix[f"{key}/{name}/global_f64"]))
            if f"{key}/{name}/patch_f64" in fix.files:
                record("patch_f64", maxdiff(f64.patches[0], fix[f"{key}/{name}/patch_f64"]))
    return out


if __name__ == "__main__":
    for output, diff in measure().items():
        print(f"{output:24s} {diff:.2e}")
