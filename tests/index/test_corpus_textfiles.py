"""Corpus text files: encodings (BOM, UTF-8, refused Latin-1 CSVs, counted bad bytes in reports), delimiters, and
folder corpora whose sub-folders are links."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxr_explorer.cli import main
from cxr_explorer.index.corpus import read_corpus
from cxr_explorer.index.presets import CorpusError
from cxr_explorer.index.textfiles import sniff_delimiter
from cxr_explorer.retrieval.bundle.reader import Bundle
from tests.helpers.corpora import png_bytes

ROWS = [("images/a.png", "Small left effusion, no pneumothorax.", "PA"),
        ("images/b.png", "Cardiomegaly; lungs clear.", "AP")]


def _write_images(root: Path) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for k, (path, _, _) in enumerate(ROWS):
        (root / path).write_bytes(png_bytes(k))


def _csv_text(delimiter: str) -> str:
    lines = [delimiter.join(["image_path", "report", "view"])]
    lines += [delimiter.join([p, f'"{r}"', v]) for p, r, v in ROWS]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""),
                                               ("utf-16-be", b"\xfe\xff"), ("utf-32", b"")])
def test_csv_encodings_marked_by_a_bom_read_the_same(tmp_path: Path, encoding: str, bom: bytes) -> None:
    _write_images(tmp_path)
    (tmp_path / "c.csv").write_bytes(bom + _csv_text(",").encode(encoding))
    corpus = read_corpus(tmp_path / "c.csv")
    assert corpus.columns["image_col"] == "image_path"
    assert [i.report for i in corpus.items] == ["Small left effusion, no pneumothorax.", "Cardiomegaly; lungs clear."]
    assert corpus.items[1].metadata == {"view": "AP"}


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")])
def test_csv_delimiters_are_detected_and_recorded(tmp_path: Path, delimiter: str, name: str) -> None:
    _write_images(tmp_path)
    (tmp_path / "c.csv").write_text(_csv_text(delimiter), encoding="utf-8")
    corpus = read_corpus(tmp_path / "c.csv")
    assert [i.path for i in corpus.items] == ["images/a.png", "images/b.png"], name
    assert corpus.items[0].report == "Small left effusion, no pneumothorax."
    assert corpus.columns["csv"] == {"encoding": "utf-8", "delimiter": delimiter}


def test_delimiter_inside_quoted_reports_does_not_win() -> None:
    text = 'path;report\na.png;"a, b, c, d, e"\nb.png;"f, g, h"\n'
    assert sniff_delimiter(text) == ";"


def test_a_latin1_csv_is_refused_with_the_byte_and_place(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_bytes("image_path,report\na.png,Épanchement pleural\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"c\.csv is not UTF-8 text: byte 0xc9 at line 2, column 7; convert it"):
        read_corpus(tmp_path / "c.csv")


def test_a_latin1_csv_is_one_line_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.csv").write_bytes("image_path,report\na.png,Épanchement\n".encode("latin-1"))
    code = main(["build", str(tmp_path / "c.csv"), "--out", str(tmp_path / "b"), "--model", "tiny-random"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not UTF-8 text" in err[0]


def test_folder_links_are_followed_once_and_loops_are_listed(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere" / "series"
    real.mkdir(parents=True)
    for k in range(2):
        (real / f"x{k}.png").write_bytes(png_bytes(k))
    (real / "loop").symlink_to(real)  # a link back into itself
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "own.png").write_bytes(png_bytes(9))
    (corpus_dir / "linked").symlink_to(real)
    corpus = read_corpus(corpus_dir)
    assert [i.id for i in corpus.items] == ["own.png", "linked/x0.png", "linked/x1.png"]
    assert [(s["path"], s["reason"]) for s in corpus.skipped] == [("linked/loop", "linked-folder-seen")]


def test_report_files_that_are_not_utf8_are_counted_in_the_manifest(tmp_path: Path) -> None:
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for k, report in enumerate([b"Normal heart size.", "Épanchement à droite".encode("latin-1"),
                                "\ufeffNo effusion.".encode()]):
        (corpus_dir / f"x{k}.png").write_bytes(png_bytes(k))
        (corpus_dir / f"x{k}.txt").write_bytes(report)
    out = tmp_path / "b"
    assert main(["build", str(corpus_dir), "--out", str(out), "--model", "tiny-random", "--workers", "0",
                 "--progress", "none"]) == 0
    bundle = Bundle.open(out)
    found = bundle.manifest["build"]["columns"]["report_files"]
    assert found == {"files_not_utf8": 1, "replaced_chars": 2, "examples": ["x1.txt"]}
    reports = bundle.metadata.set_index("id")["report"].to_dict()
    assert reports["x2.png"] == "No effusion." and "\ufffd" in reports["x1.png"]
