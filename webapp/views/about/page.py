"""About page: the bundle's manifest (model, weight verification, counts, skipped items), the model card facts and
the research-use notice. UI only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cxr_explorer.retrieval.models.cards import released_cards
from cxr_explorer.retrieval.models.precision import fidelity_note
from cxr_explorer.webapp import chrome, display, loaders

engine = loaders.current_engine()
facts = engine.facts
identity = engine.model.identity.to_dict()

chrome.page_header(engine, "About")
st.error("**Research use only — not for diagnosis.** These models and this tool are not medical devices; no output "
         "here may inform a clinical decision. Similarities are cosines, not probabilities.")

st.subheader("This bundle")
model = facts.model
precision = facts.build.get("precision")
left, right = st.columns(2)
E = display.md_escape
left.markdown("\n".join([
    f"- **Folder**: {E(facts.name)}",
    f"- **Model**: {E(model.get('name'))} (revision {E(model.get('revision'))})",
    f"- **Real model**: {'yes' if identity.get('is_real') else 'NO — random weights'}",
    f"- **Weights verified**: {'yes' if identity.get('verified') else 'NO'} (source: {E(identity.get('source'))})",
    f"- **Image weights MD5**: {E(model.get('image_md5'))}",
    f"- **Preprocessing**: {E(facts.preprocessing)} · grid {E(facts.grid_shape)}",
    f"- **Precision**: {E(precision or 'not recorded')} — {E(fidelity_note(precision))}",
    f"- **Created**: {E(facts.created)}",
]))
right.dataframe(pd.DataFrame([{"what": k, "count": v} for k, v in facts.counts.items()]), hide_index=True)
for warning in identity.get("warnings", []):
    st.warning(display.plain_message(warning, str(facts.root)))
if facts.indexes:
    st.dataframe(pd.DataFrame([{"index": i.target, "type": i.type, "vectors": i.vectors, "params": str(i.params)}
                               for i in facts.indexes]), hide_index=True)
skipped = facts.skipped
st.markdown(f"**Skipped while building: {len(skipped)} item{'' if len(skipped) == 1 else 's'}**")
if skipped:
    st.dataframe(pd.DataFrame(skipped), hide_index=True, width="stretch")
if facts.build:
    with st.expander("Build record"):
        st.json(facts.build)

st.subheader("Model cards")
for name, card in released_cards().items():
    st.markdown(f"**{name}**" + ("  ← this bundle" if name == facts.model_name else ""))
    st.dataframe(pd.DataFrame([{"fact": k, "value": v} for k, v in card.items()]), hide_index=True,
                 width="stretch")
st.caption(display.RESEARCH_ONLY)
