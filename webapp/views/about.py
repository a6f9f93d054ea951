"""About page: the bundle's manifest (model, weight verification, counts, skipped items), the model card facts and
the research-use notice. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from webapp import chrome, display, loaders

MODEL_CARDS = {
    "biovil": {"Paper": "BioViL, Boecking et al., ECCV 2022", "Repository": "microsoft/BiomedVLP-CXR-BERT-specialized",
               "Revision": "v1.1", "Image encoder": "ResNet-50, 128-d projection", "Preprocessing":
               "resize 512, centre crop 480", "MS-CXR grounding (published)":
               "mean CNR 1.07 ± 0.04 (BioViL-T model card) / 1.027 (CXR-BERT model card); mIoU 0.229"},
    "biovil-t": {"Paper": "BioViL-T, Bannur et al., CVPR 2023", "Repository": "microsoft/BiomedVLP-BioViL-T",
                 "Revision": "v1.0", "Image encoder": "ResNet-50 + temporal ViT pooler, 128-d projection",
                 "Preprocessing": "resize 512, centre crop 448", "MS-CXR grounding (published)":
                 "mean CNR 1.33; mIoU 0.240"},
}

engine = loaders.current_engine()
manifest = engine.bundle.manifest
identity = engine.model.identity.to_dict()

chrome.page_header(engine, "About")
st.error("**Research use only — not for diagnosis.** These models and this tool are not medical devices; no output "
         "here may inform a clinical decision. Similarities are cosines, not probabilities.")

st.subheader("This bundle")
model = manifest.get("model", {})
left, right = st.columns(2)
E = display.md_escape
left.markdown("\n".join([
    f"- **Folder**: {E(engine.bundle.root.name)}",
    f"- **Model**: {E(model.get('name'))} (revision {E(model.get('revision'))})",
    f"- **Real model**: {'yes' if identity.get('is_real') else 'NO — random weights'}",
    f"- **Weights verified**: {'yes' if identity.get('verified') else 'NO'} (source: {E(identity.get('source'))})",
    f"- **Image weights MD5**: {E(model.get('image_md5'))}",
    f"- **Preprocessing**: {E(manifest.get('preprocessing'))} · grid {E(tuple(manifest.get('grid_shape', [])))}",
    f"- **Created**: {E(manifest.get('created', '?'))}",
]))
counts = manifest.get("counts", {"items": manifest.get("count")})
right.dataframe(pd.DataFrame([{"what": k, "count": v} for k, v in counts.items()]), hide_index=True)
for warning in identity.get("warnings", []):
    st.warning(display.plain_message(warning, str(engine.bundle.root)))
indexes = manifest.get("indexes", {})
if indexes:
    st.dataframe(pd.DataFrame([{"index": k, "type": v.get("type"), "vectors": v.get("count"),
                                "params": str(v.get("params", {}))} for k, v in indexes.items()]), hide_index=True)
skipped = engine.bundle.skipped
st.markdown(f"**Skipped while building: {len(skipped)} item{'' if len(skipped) == 1 else 's'}**")
if skipped:
    st.dataframe(pd.DataFrame(skipped), hide_index=True, width="stretch")
if manifest.get("build"):
    with st.expander("Build record"):
        st.json(manifest["build"])

st.subheader("Model cards")
for name, facts in MODEL_CARDS.items():
    st.markdown(f"**{name}**" + ("  ← this bundle" if name == engine.bundle.model_name else ""))
    st.dataframe(pd.DataFrame([{"fact": k, "value": v} for k, v in facts.items()]), hide_index=True,
                 width="stretch")
st.caption(display.RESEARCH_ONLY)
