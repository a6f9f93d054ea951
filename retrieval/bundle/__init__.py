"""The bundle format: its reader, its writer, what it says about itself, and the files on disk (``store``)."""
