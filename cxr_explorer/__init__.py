"""cxr-explorer: the command line, the composition root above ``retrieval`` (engine), ``index`` (offline job) and
``webapp`` (Streamlit app)."""

__version__ = "0.1.0"
