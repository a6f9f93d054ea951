"""Every file and folder name of a bundle on disk (the only place that spells them; see docs/bundle-format.md).

Layout of a bundle folder ``ROOT`` (format version 2)::

    ROOT/CURRENT               the installed version's number ("000003"), replaced atomically
    ROOT/CURRENT.next          the number of the version being installed (only between its rename and the pointer flip)
    ROOT/versions/000003/      one immutable installed version: manifest.json + data files + .readers
    ROOT/writer.lock           flock of the one job writing ROOT; records its holder
    ROOT/_build/               work of an unfinished build: build.json, chunks/, temporal/, staging/, text-cache.f32
"""

from __future__ import annotations

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"  # the SHA-256 (hex) of manifest.json's bytes, written after it
BLOCK_DIGESTS_SUFFIX = ".blocks"  # FILE.blocks: the SHA-256 of each 64 KiB block of FILE, 32 bytes each
METADATA = "metadata.parquet"
SENTENCES = "sentences.parquet"
IMAGE_EMB = "image_emb.npy"
REPORT_EMB = "report_emb.npy"
REPORT_ROWS = "report_rows.npy"
PROJECTIONS = "projections.npz"  # 2-D map coordinates, see retrieval/maps/projection.py
SENTENCE_EMB = "sentence_emb.npy"
PATCHES = "patches.npy"
PATCHES_INT8 = "patches_int8.npy"  # --patch-store int8: codes [N, h, w, D] int8 ...
PATCH_SCALES = "patch_scales.npy"  # ... and one float16 scale per patch vector [N, h, w]
THUMBS = "thumbs.bin"
THUMBS_INDEX = "thumbs_index.npy"
IMAGE_HASHES = "image_hashes.npy"  # perceptual hash of each thumbnail [N, 32] uint8 (retrieval/inputs/image_hash.py)
SKIPPED_CSV = "skipped.csv"
SKIPPED_JSON = "skipped.json"
COVERED = "covered.json"
INDEX_FILES = {"images": "images.faiss", "reports": "reports.faiss", "sentences": "sentences.faiss"}
PART_STATS = "part_stats.json"
TEMPORAL_DIR = "temporal"
PAIRS_FILE = "pairs.parquet"
TEMPORAL_EMB = "temporal_emb.npy"

CURRENT = "CURRENT"
INSTALLING = CURRENT + ".next"
VERSIONS = "versions"
READERS_LOCK = ".readers"
WRITER_LOCK = "writer.lock"
BUILD_AREA = "_build"
BUILD_STATE = "build.json"
CHUNKS = "chunks"
TEMPORAL_CHUNKS = "temporal-chunks"
STAGING = "staging"
TMP_PREFIX = ".tmp-"
TEXT_CACHE = "text-cache.f32"  # the build's text-cache vectors [M, D] float32, headerless (index.text_cache)



def block_digests(name: str) -> str:
    """The block-digest file of the data file ``name`` (retrieval.bundle.store.integrity)."""
    return name + BLOCK_DIGESTS_SUFFIX


#: Names a format-1 bundle (a flat folder) has at its top level.
LEGACY_MARKERS = (MANIFEST, CHUNKS, "_ready", "_staging", "build.json")
