"""Curation checks: what is wrong in a corpus (swapped reports, label noise, outliers, leakage between splits).

Plain Python over a bundle's vectors and FAISS indexes (no Streamlit). Every vector check is O(N k): each item is
searched once for its ``k`` nearest neighbours; no N x N matrix is ever formed. Each check returns a
:class:`~retrieval.curate.base.CheckResult` whose table is sorted worst first. Scores are cosine similarities,
ranks and margins, never probabilities.
"""

from cxr_explorer.retrieval.curate.base import CheckResult, CurateData, data_from_bundle
from cxr_explorer.retrieval.curate.report import CurateConfig, run_checks, write_report

__all__ = ["CheckResult", "CurateConfig", "CurateData", "data_from_bundle", "run_checks", "write_report"]
