"""Reading a corpus's text files (CSV manifests, report files): encoding and delimiter, never a silent change.

- CSVs: a byte-order mark selects UTF-8, UTF-16 or UTF-32; otherwise the file must be UTF-8, and a file that is not
  is refused with one line naming the first bad byte and how to convert it. The delimiter (``,`` ``;`` tab ``|``) is
  the one that splits the header and the first rows into the same number of fields, ``,`` on a tie.
- Report files: the same BOM rules; a file that is not UTF-8 is still indexed, with U+FFFD for the bad bytes, and
  the files and replaced characters are counted (``TextStats``, recorded in the manifest) and logged by name.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

DELIMITERS = (",", ";", "\t", "|")
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
_SNIFF_LINES = 50


class NotUtf8Error(ValueError):
    """A text file that is neither UTF-8 nor marked (BOM) as UTF-16/32."""


@dataclass
class TextStats:
    """Report files that were not UTF-8, and how many characters became U+FFFD (for the manifest)."""

    files_not_utf8: int = 0
    replaced_chars: int = 0
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready counts with at most five example file names."""
        return {"files_not_utf8": self.files_not_utf8, "replaced_chars": self.replaced_chars,
                "examples": self.examples[:5]}


def bom_encoding(raw: bytes) -> str | None:
    """The codec a byte-order mark at the start of ``raw`` names, or None."""
    return next((enc for bom, enc in _BOMS if raw.startswith(bom)), None)


def decode_strict(raw: bytes, name: str) -> tuple[str, str]:
    """``(text, encoding)``: by BOM, else UTF-8; NotUtf8Error names the first bad byte's line and column."""
    encoding = bom_encoding(raw) or "utf-8"
    try:
        return raw.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        head = raw[: exc.start]
        line = head.count(b"\n") + 1
        column = exc.start - (head.rfind(b"\n") + 1) + 1
        raise NotUtf8Error(f"{name} is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, column {column}; "
                           f"convert it (e.g. iconv -f latin1 -t utf-8) or save it as UTF-8") from None


def read_report_file(path: Path, stats: TextStats) -> str:
    """A report file's text; bytes that are not UTF-8 become U+FFFD, counted in ``stats`` and logged."""
    raw = path.read_bytes()
    try:
        return decode_strict(raw, str(path))[0]
    except NotUtf8Error as exc:
        text = raw.decode(bom_encoding(raw) or "utf-8", errors="replace")
        stats.files_not_utf8 += 1
        stats.replaced_chars += text.count("\ufffd") - raw.decode("utf-8", errors="ignore").count("\ufffd")
        stats.examples.append(path.name)
        log.warning("%s (indexed with U+FFFD in place of the bad bytes)", exc)
        return text


def _field_counts(sample: str, delimiter: str) -> list[int]:
    rows = csv.reader(io.StringIO(sample), delimiter=delimiter)
    return [len(row) for row, _ in zip(rows, range(_SNIFF_LINES), strict=False) if row]


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header into the most fields, consistently over the first rows; ``,`` on ties."""
    lines = text.splitlines(keepends=True)
    sample = "".join(lines[: _SNIFF_LINES + 1])
    if len(lines) > _SNIFF_LINES + 1:  # the last sampled row may be cut by a quoted multi-line cell
        sample = "".join(lines[:_SNIFF_LINES])
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        counts = _field_counts(sample, delimiter)
        if not counts or counts[0] <= best_fields:
            continue
        consistent = sum(1 for c in counts[1:] if c == counts[0]) >= 0.9 * max(1, len(counts) - 1)
        if consistent:
            best, best_fields = delimiter, counts[0]
    return best


@dataclass(frozen=True)
class CsvText:
    """A CSV file's decoded text and how it was read (recorded in the manifest)."""

    text: str
    encoding: str
    delimiter: str

    def describe(self) -> dict[str, str]:
        """``{"encoding": ..., "delimiter": ...}`` for the manifest."""
        return {"encoding": self.encoding, "delimiter": self.delimiter}


def read_csv_text(path: Path, limit: int | None = None) -> CsvText:
    """Decode a CSV (``.gz`` too) by the rules above; ``limit`` bytes only (for header checks)."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read() if limit is None else fh.read(limit)
    if limit is not None:  # a cut may split a multi-byte character or line: keep whole lines only
        raw = raw[: raw.rfind(b"\n") + 1] or raw
    text, encoding = decode_strict(raw, f"corpus CSV {path}")
    return CsvText(text, encoding, sniff_delimiter(text))
