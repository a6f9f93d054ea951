"""The model layer on the tiny model: shapes, determinism, text rules, precision, devices, BioViL-T prior path."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from cxr_explorer.retrieval.models import get_spec, list_models, load_model
from cxr_explorer.retrieval.models.api import pick_device
from cxr_explorer.retrieval.models.image_model import ImageModel
from cxr_explorer.retrieval.models.text_model import TextInputError
from cxr_explorer.retrieval.models.transformer import VisionTransformerPooler


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random", device="cpu")


def test_registry_has_released_specs() -> None:
    assert list_models() == ["biovil", "biovil-t", "tiny-random", "tiny-random-t"]
    assert [get_spec(n).is_real for n in list_models()] == [True, True, False, False]
    assert get_spec("tiny-random-t").image_arch == get_spec("biovil-t").image_arch == "resnet50_multi_image"
    b, t = get_spec("biovil"), get_spec("biovil-t")
    assert (b.hf_repo, b.revision, b.image_md5, b.crop) == (
        "microsoft/BiomedVLP-CXR-BERT-specialized", "v1.1", "02ce6ee460f72efd599295f440dbb453", 480)
    assert (t.hf_repo, t.revision, t.image_md5, t.crop) == (
        "microsoft/BiomedVLP-BioViL-T", "v1.0", "a83080e2f23aa584a4f2b24c39b1bb64", 448)


def test_real_architectures_match_reference_key_counts() -> None:
    """328 / 372 state-dict keys and 25,835,944 parameters, as hi-ml's ImageModel has."""
    biovil, biovil_t = ImageModel(get_spec("biovil")), ImageModel(get_spec("biovil-t"))
    assert len(biovil.state_dict()) == 328 and len(biovil_t.state_dict()) == 372
    assert sum(p.numel() for p in biovil.parameters()) == 25_835_944


def test_tiny_random_announces_itself(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        model = load_model("tiny-random", device="cpu")
    assert "NOT A REAL MODEL" in caplog.text
    assert not model.identity.is_real and not model.identity.verified


def test_tiny_random_is_deterministic(tiny) -> None:
    other = load_model("tiny-random", device="cpu")
    x = torch.rand(2, 3, 480, 480)
    assert torch.equal(tiny.embed_images(x), other.embed_images(x))
    assert torch.equal(tiny.embed_texts(["left effusion"]), other.embed_texts(["left effusion"]))


def test_shapes_and_norms(tiny) -> None:
    img = Image.new("L", (600, 500), 30)
    x = tiny.preprocess(img).unsqueeze(0).repeat(3, 1, 1, 1)
    emb = tiny.encode_images(x)
    assert emb.global_emb.shape == (3, 128) and emb.patches.shape == (3, 15, 15, 128)
    assert torch.allclose(emb.global_emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(emb.patches.norm(dim=-1), torch.ones(3, 15, 15), atol=1e-5)
    assert torch.equal(tiny.embed_images(x), emb.global_emb)
    assert tiny.patch_grid == (15, 15)


@pytest.mark.parametrize("size", [(480, 480), (448, 448), (33, 64), (97, 31), (1, 1)])
def test_patch_grid_without_a_forward_matches_the_forward(size: tuple[int, int]) -> None:
    """The analytic grid (the build uses it instead of a forward pass) equals the trunk's real output grid."""
    spec = get_spec("biovil")
    model = ImageModel(spec.__class__(**{**spec.__dict__, "base_width": 8})).eval()
    with torch.inference_mode():
        patches = model(torch.rand(1, 3, *size)).patches
    assert model.grid(*size) == tuple(patches.shape[1:3])


def test_text_rules(tiny) -> None:
    a, b = tiny.embed_texts(["Left effusion.", "Left effusion"])
    assert torch.allclose(a, b), "trailing .!? are stripped as in the reference"
    tiny.embed_texts(["no [MASK] effusion"])
    for bad in ("", "   ", "effusion [SEP] left", "[CLS] lung"):
        with pytest.raises(TextInputError):
            tiny.embed_texts([bad])
    with pytest.raises(TextInputError, match="at most 512"):
        tiny.embed_texts(["lung " * 600])
    with pytest.raises(TextInputError):
        tiny.embed_texts("a string, not a list")  # type: ignore[arg-type]


def test_unnormalised_text(tiny) -> None:
    raw = tiny.embed_texts(["left lung"], normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), tiny.embed_texts(["left lung"]), atol=1e-6)


def test_bf16_agrees_with_fp32() -> None:
    fp32 = load_model("tiny-random", device="cpu")
    bf16 = load_model("tiny-random", device="cpu", precision="bf16")
    x = torch.rand(2, 3, 480, 480)
    cos = (fp32.embed_images(x) * bf16.embed_images(x)).sum(-1)
    assert cos.min() > 0.98 and bf16.embed_images(x).dtype == torch.float32


def test_devices() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="precision"):
        load_model("tiny-random", device="cpu", precision="fp16")  # type: ignore[arg-type]


def test_biovil_t_prior_image_path() -> None:
    spec = get_spec("biovil-t")
    model = ImageModel(spec.__class__(**{**spec.__dict__, "base_width": 8})).eval()
    cur, prev = torch.rand(1, 3, 448, 448), torch.rand(1, 3, 448, 448)
    with torch.inference_mode():
        single, paired = model(cur), model(cur, prev)
    assert single.patches.shape == paired.patches.shape == (1, 14, 14, 128)
    assert not torch.allclose(single.global_emb, paired.global_emb)
    with pytest.raises(ValueError, match="differ in shape"), torch.inference_mode():
        model(cur, torch.rand(1, 3, 480, 480))


def test_temporal_pooler_needs_its_grid() -> None:
    pooler = VisionTransformerPooler(input_dim=16, grid_shape=(14, 14), num_heads=2)
    with pytest.raises(ValueError, match="grids"):
        pooler(torch.rand(1, 16, 15, 15), torch.rand(1, 16, 15, 15))
    assert pooler(torch.rand(2, 16, 14, 14), torch.rand(2, 16, 14, 14)).shape == (2, 16, 14, 14)
