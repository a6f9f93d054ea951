"""The Streamlit app of cxr-explorer (``cxr-explorer app BUNDLE``): pages are UI only, the engine is ``retrieval``."""
