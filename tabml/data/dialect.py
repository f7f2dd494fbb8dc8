"""How a file is written: compression, format, encoding, delimiter, decimal and thousands separators.

Decided once from the bytes (or set in `data:`), recorded in reports/ingest.json and the validation reference,
and passed back as hints when a new batch or a predict input is read, so every file is read the same way.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from tabml.core.errors import StageError

SNIFF_CHARS = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")
SEP_LINE = re.compile(r'^"?sep=(.)"?,*\r?$')
Format = Literal["csv", "parquet", "xlsx"]
MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
# a number written with "." as the decimal mark and "," (or nothing) between thousands, and the reverse
DOT_NUMBER = re.compile(r"^[+-]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?$")
COMMA_NUMBER = re.compile(r"^[+-]?(?:[1-9]\d{0,2}(?:[. \u00a0\u202f]\d{3})+|\d+)(?:,\d+)?$")
AMBIGUOUS_GROUP = re.compile(r"^[+-]?[1-9]\d{0,2}([.,])\d{3}$")  # 1,234 or 1.234: thousands or decimals?


class Dialect(BaseModel):
    """What was decided about a file; `notes` say what was found and changed while reading it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format
    compression: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    sep_line: bool = False
    sheet: str | None = None
    na_values: list[str] = []
    date_formats: dict[str, str] = {}
    notes: list[str] = []


def is_compressed(head: bytes) -> bool:
    """gzip, bz2, xz or zip magic bytes (an .xlsx is a zip too: `decompress` leaves it as it is)."""
    return any(head.startswith(magic) for magic in MAGIC)


def decompress(raw: bytes, path: Path) -> tuple[bytes, str | None]:
    """The file's bytes with gzip, bz2, xz or a one-member zip undone (an .xlsx zip is left as it is)."""
    kind = next((name for magic, name in MAGIC.items() if raw.startswith(magic)), None)
    if kind is None:
        return raw, None
    try:
        if kind == "zip":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                if "[Content_Types].xml" in names:
                    return raw, None  # an Office document (xlsx), not a compressed table
                if len(names) != 1:
                    raise StageError(
                        f"the zip archive holds {len(names)} files {names[:5]}, not one table",
                        path,
                        "zip the table alone, or unzip it and point data.path at the file",
                    )
                return archive.read(names[0]), "zip"
        opener = {"gzip": gzip.decompress, "bz2": bz2.decompress, "xz": lzma.decompress}[kind]
        return opener(raw), kind
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise StageError(
            f"the file starts like {kind} but does not decompress ({exc})", path, "export or download it again"
        ) from None


def content_format(raw: bytes) -> Format | None:
    """What the bytes are, when they say so: Parquet (PAR1) or an Office workbook."""
    if raw.startswith(b"PAR1"):
        return "parquet"
    if raw.startswith(b"PK\x03\x04"):
        return "xlsx"
    return None


def _looks_binary(text: str) -> bool:
    control = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r")
    return "\x00" in text or control > len(text) * 0.01


def decode(source: bytes | Path, path: Path, declared: str | None) -> tuple[str, str]:
    """The first rows as text (cut at a line end), and the encoding every byte of the file decodes with: the
    declared one, a BOM's, UTF-8, or what charset-normalizer is sure of. The whole text is never held."""
    head = source[: 4 * SNIFF_CHARS] if isinstance(source, bytes) else _file_head(source, 4 * SNIFF_CHARS)
    encoding = declared or next((name for bom, name in BOMS if head.startswith(bom)), None)
    if encoding is None:
        encoding = "utf-8" if _decodes(source, "utf-8") else _guess_encoding(source, head, path)
    elif not _decodes(source, encoding):
        what = f"data.encoding {declared!r}" if declared else f"{encoding} (its byte-order mark says so)"
        raise StageError(f"not every byte decodes as {what}", path, "fix data.encoding, or export the table again")
    sample = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    if len(head) == 4 * SNIFF_CHARS:
        sample = sample[: sample.rfind("\n") + 1]
    if _looks_binary(sample[:SNIFF_CHARS]):
        raise StageError(
            "the file is not text (binary or garbled bytes)",
            path,
            "point data.path at a CSV, Parquet or .xlsx export; for another text encoding set data.encoding",
        )
    return sample, encoding


def _file_head(path: Path, size: int) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _chunks(source: bytes | Path, size: int = 1 << 24) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield from (source[start : start + size] for start in range(0, len(source), size))
        return
    with source.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def _decodes(source: bytes | Path, encoding: str) -> bool:
    """Whether every byte decodes, chunk by chunk (no copy of the whole text); an unknown encoding does not."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        for chunk in _chunks(source):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def after_first_line(source: bytes | Path, encoding: str) -> tuple[bytes, str]:
    """The bytes after the first line (Excel's `sep=` line), with the encoding to read them with."""
    raw = source if isinstance(source, bytes) else source.read_bytes()
    if "16" in encoding or "32" in encoding:  # wide encodings: no byte-level newline to cut at
        return raw.decode(encoding).partition("\n")[2].encode("utf-8"), "utf-8"
    return raw[raw.find(b"\n") + 1 :], encoding


def _guess_encoding(source: bytes | Path, head: bytes, path: Path) -> str:
    """charset-normalizer's encoding, when every encoding it finds plausible reads the text alike; legacy
    single-byte encodings often do not (`é` in cp1252 is `щ` in cp1251), and then the file is refused."""
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(head) if m.encoding]
    if not matches:
        raise StageError(
            "the file is not text (binary or garbled bytes), or not UTF-8 and its encoding cannot be told",
            path,
            "set data.encoding in params.yaml (e.g. cp1252, latin-1, utf-16), or export the table as UTF-8",
        )
    words = dict.fromkeys(w for w in re.split(rb"[\s,;|\t]+", head) if any(b > 127 for b in w))  # in order, once
    accented = b" ".join(list(words)[:8])
    readings: dict[str, str] = {}
    for match in matches[:6]:
        readings.setdefault(accented.decode(match.encoding, errors="replace"), str(match.encoding))
    if len(readings) > 1:
        shown = "; ".join(f"{enc}: {text[:40]!r}" for text, enc in list(readings.items())[:3])
        raise StageError(
            f"the file is not UTF-8 and its text reads differently in the encodings it could be in ({shown})",
            path,
            "set data.encoding in params.yaml to the one that reads right (Windows exports in Western Europe are "
            f"usually cp1252; plausible here: {', '.join(readings.values())}), or export the table as UTF-8",
        )
    encoding = str(matches[0].encoding)
    if not _decodes(source, encoding):
        raise StageError(
            f"the text encoding looks like {encoding} but not every byte decodes with it",
            path,
            "set data.encoding in params.yaml, or export the table as UTF-8",
        )
    return encoding


def strip_sep_line(text: str) -> tuple[str, str | None]:
    """Excel's `sep=;` first line: the delimiter it names, and the text without it."""
    first, _, rest = text.partition("\n")
    match = SEP_LINE.match(first)
    return (rest, match.group(1)) if match else (text, None)


def sample_rows(text: str, delimiter: str, limit: int = 500) -> list[list[str]]:
    """The first rows of the sample (a cut-off last line left out), split by `delimiter`."""
    head = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS:
        head = head[: head.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(head), delimiter=delimiter))
    return [r for r in rows if r][:limit]


def detect_delimiter(text: str, path: Path) -> str:
    """The delimiter giving every sampled row the header's field count (over one); refuse a tie."""
    fits = {}
    for candidate in DELIMITERS:
        rows = sample_rows(text, candidate)
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        fits[candidate] = sum(len(r) in (width, width + 1) for r in rows) / len(rows)
    if not fits:
        return ","  # one column: nothing to split
    best = max(fits.values())
    winners = [c for c, share in fits.items() if share == best]
    if len(winners) > 1:
        shown = " or ".join(repr(c) for c in winners)
        raise StageError(
            f"the delimiter could be {shown}: each splits every row into the same number of fields",
            path,
            f"set data.delimiter in params.yaml to one of {shown}",
        )
    return winners[0]


def _number_evidence(rows: list[list[str]]) -> tuple[set[str], set[str], dict[str, str]]:
    """Columns proving "." / "," as the decimal mark, and columns with only `1,234`-like values."""
    header, body = rows[0], rows[1:]
    dot: set[str] = set()
    comma: set[str] = set()
    ambiguous: dict[str, str] = {}
    for i, name in enumerate(header):
        values = [r[i].strip() for r in body if i < len(r) and r[i].strip()]
        for value in values:
            if AMBIGUOUS_GROUP.match(value):
                ambiguous.setdefault(name, value)
            elif DOT_NUMBER.match(value) and ("." in value):
                dot.add(name)
            elif COMMA_NUMBER.match(value) and ("," in value):
                comma.add(name)
    return dot, comma, {n: v for n, v in ambiguous.items() if n not in dot | comma}


def detect_numbers(
    rows: list[list[str]], path: Path, decimal: str | None, thousands: str | None, hint: Dialect | None
) -> tuple[str, str | None]:
    """The decimal mark and thousands separator the numbers are written with; refuse what is ambiguous."""
    dot, comma, ambiguous = _number_evidence(rows) if rows else (set(), set(), {})
    if decimal is None and dot and comma:
        raise StageError(
            f"numbers use '.' as the decimal mark in {sorted(dot)[:3]} but ',' in {sorted(comma)[:3]}",
            path,
            "set data.decimal ('.' or ',') in params.yaml, and data.thousands if a column groups thousands",
        )
    if decimal is None:
        decimal = "," if comma else "." if dot else None
        if decimal is not None and hint is not None and hint.decimal is not None and decimal != hint.decimal:
            column = sorted(comma if decimal == "," else dot)[0]
            raise StageError(
                f"numbers are written with {decimal!r} as the decimal mark (e.g. column {column!r}), but the "
                f"table the reference was read from used {hint.decimal!r}",
                path,
                f"if this file really uses {decimal!r}, set data.decimal: {decimal!r} in params.yaml (tabml.predict: "
                f"--decimal {decimal!r}); otherwise export it as the reference table was",
            )
    if decimal is None and ambiguous and (hint is None or hint.decimal is None):
        column, value = next(iter(ambiguous.items()))
        raise StageError(
            f"column {column!r} holds values like {value!r}: a thousands separator or a decimal mark?",
            path,
            "set data.decimal ('.' or ',') and data.thousands (',', '.', ' ' or '' for none) in params.yaml",
        )
    if decimal is None:
        decimal = hint.decimal if hint is not None and hint.decimal else "."
    if thousands is None:
        thousands = _thousands(rows, decimal) if rows else None
    elif thousands == "":
        thousands = None
    return decimal, thousands


def _thousands(rows: list[list[str]], decimal: str) -> str | None:
    """The thousands separator seen in the numbers, given the decimal mark."""
    candidates = (",",) if decimal == "." else (".", " ", "\u00a0", "\u202f")
    pattern = DOT_NUMBER if decimal == "." else COMMA_NUMBER
    for sep in candidates:
        grouped = re.compile(rf"\d{re.escape(sep)}\d{{3}}(?:\D|$)")
        if any(pattern.match(v.strip()) and grouped.search(v.strip()) for r in rows[1:] for v in r):
            return sep
    return None
