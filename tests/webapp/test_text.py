"""Safe text helpers and export naming of the app (no Streamlit session needed)."""

from __future__ import annotations

import re

from cxr_explorer.webapp import display, exports, page_state


def test_md_escape_leaves_no_markdown_link_html_or_autolink() -> None:
    out = display.md_escape("[Click](https://evil.example/x) <b>x</b> www.evil.com a@b.com **bold**")
    assert "](" not in out and "<b>" not in out and "**" not in out
    assert not re.search(r"https?://\w", out) and "www." not in out and not re.search(r"@\w", out)


def test_plain_message_hides_server_paths() -> None:
    msg = display.plain_message("no item with id 'x' in bundle /srv/data/bundles/covid", "/srv/data/bundles/covid")
    assert "/srv" not in msg and "covid" in msg
    assert "/home" not in display.plain_message("cannot read /home/u/secret/img.png")


def test_export_file_names_follow_the_query() -> None:
    assert exports.file_stem("results", "Small LEFT effusion?!") == "cxr-explorer-results-small-left-effusion"
    assert exports.file_stem("results", "") == "cxr-explorer-results"
    assert len(exports.file_stem("results", "x" * 500)) <= len("cxr-explorer-results-") + exports.MAX_NAME


def test_export_file_names_keep_unicode_safely() -> None:
    assert exports.file_stem("results", "左下叶实变 ñandú") == "cxr-explorer-results-左下叶实变-ñandú"
    assert exports.file_stem("results", "Ｅｆｆｕｓｉｏｎ") == "cxr-explorer-results-effusion"  # NFKC
    for hostile in ("../../etc/passwd", "a\u202eb\x00c\nd", "x/y\\z:*?.csv"):
        stem = exports.file_stem("results", hostile)
        assert re.fullmatch(r"[\w-]+", stem) and "_" not in stem.removeprefix("cxr-explorer-results"), stem


def test_json_exports_hold_numbers_as_numbers() -> None:
    import json

    import pandas as pd

    frame = pd.DataFrame({"id": ["0001", "12"], "rank": [1, 2], "similarity": [0.5, 0.25],
                          "age": ["44.0", ""], "offset": ["3", "17"], "zip": ["007", "12"], "view": ["PA", "AP"]})
    rows = json.loads(exports.json_bytes(frame, {"query": "x"}))["rows"]
    assert rows[0] == {"id": "0001", "rank": 1, "similarity": 0.5, "age": 44.0, "offset": 3, "zip": "007",
                       "view": "PA"}
    assert rows[1]["age"] is None and rows[1]["id"] == "12"


def test_page_state_url_round_trip_and_bounds() -> None:
    state = page_state.PageState("t", (page_state.text_field("q", "q"), page_state.int_field("k", "k", 12, 1, 100),
                              page_state.range_field("r", "r", (-1.0, 1.0), -1.0, 1.0), page_state.bool_field("b", "b"),
                              page_state.list_field("f", "f", {"A", "B"}.__contains__)))
    values = {"q": "x" * 10_000, "k": 7, "r": (-0.5, 0.25), "b": True, "f": ["A", "B"]}
    assert state.from_url(state.to_url(values)) == values  # a 10,000-character query comes back whole
    bad = state.from_url({"k": ["1000"], "r": ["0.5,0.1"], "f": ["A", "Z"], "b": ["yes"]})
    assert bad["k"] == 100 and bad["r"] == (-1.0, 1.0) and bad["f"] == ["A"] and bad["b"] is False
    assert state.to_url({"q": "", "k": 12}) == {}
