"""The bundle format: its reader, its writer, what it says about itself, and the files on disk (``store``).

- :mod:`retrieval.bundle.store` owns every file and folder name (``store.names``) and the data files of a *part*
  (``store.parts``: chunks, versions and shards are all parts), the install protocol and the locks.
- :mod:`retrieval.bundle.writer` writes a version: the parts' data files, the FAISS indexes, then the derived files,
  then the manifest (last), and installs it.
- :mod:`retrieval.bundle.reader` opens the current version read-only (:class:`retrieval.bundle.reader.Bundle`);
  :mod:`retrieval.bundle.facts` is what a bundle says about itself, for the app and the CLI.

Adding a file to the bundle is one way: its name in ``store/names.py``; a derived-file step
(``(staging, manifest) -> Derived(entries, files)``) registered in :data:`retrieval.bundle.writer.DERIVED`, or passed
to :func:`retrieval.bundle.writer.write_version` by the job that alone can make it (the build's temporal stage), with
the :class:`~retrieval.bundle.reader.Bundle` accessor that reads it; and a test. See docs/bundle-format.md, "Adding a
file".
"""
