"""Curation checks: what is wrong in a corpus (swapped reports, label noise, outliers, leakage between splits).

Plain Python over a bundle's vectors and FAISS indexes (no Streamlit). Every vector check is O(N k): each item is
searched once for its ``k`` nearest neighbours; no N x N matrix is ever formed. Each check returns a
:class:`~retrieval.curate.base.CheckResult` whose table is sorted worst first. Scores are cosine similarities,
ranks and margins, never probabilities. The checks are listed in :mod:`retrieval.curate.registry`, imported here
first so that every check is registered before any is used.
"""

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, data_from_bundle
from cxr_explorer.retrieval.curate.registry import CheckSpec, checks, register
from cxr_explorer.retrieval.curate.report import CurateConfig, run_checks, write_report

__all__ = ["CheckResult", "CheckSpec", "CurateConfig", "CurateData", "checks", "data_from_bundle", "register",
           "run_checks", "write_report"]
