"""The pages of the app, one folder each: ``page.py`` (the Streamlit script) beside its own state and loaders."""
