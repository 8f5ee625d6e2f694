"""Reading a store's CSV export (Shopify's customer, order and product exports) one record at a time, with a
progress bar and a summary of rejected rows that every importer shares. Memory does not grow with the file:
a line longer than MAX_LINE_BYTES is refused without being held, a record that is not valid CSV (or not
UTF-8) is reported with its line numbers and the rest goes on."""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, TextIO, Tuple, TypeVar

from sqlalchemy.exc import OperationalError

MAX_LINE_BYTES = 1 << 20  # a physical line longer than this is refused without being held in memory
LINE_COLUMNS = ("line_quantity", "line_name", "line_price")  # line item columns: all or none

ProgressCallback = Callable[[int, int, int], None]  # (done_bytes, total_bytes, rows)


class ImportFileError(ValueError):
    """A file that cannot be imported at all (missing, unreadable, not a Shopify export, columns missing)."""


class _LineTooLong(Exception):
    pass


class _Lines:
    """Physical lines of a UTF-8 file for csv.reader, counting bytes and lines as they are read.

    A class rather than a generator: after it raises (a line too long to hold) it can go on reading.
    """

    def __init__(self, binary: io.BufferedReader) -> None:
        self._file = binary
        self.bytes = 0
        self.lines = 0
        self.last_undecodable = 0  # number of the last line that was not UTF-8
        self._first = True

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        raw = self._file.readline(MAX_LINE_BYTES)
        if not raw:
            raise StopIteration
        self.bytes += len(raw)
        self.lines += 1
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of it, a block at a time
                raw = self._file.readline(MAX_LINE_BYTES)
                self.bytes += len(raw)
            raise _LineTooLong(f"a line longer than {MAX_LINE_BYTES:,} bytes")
        if self._first:
            self._first = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.last_undecodable = self.lines
            return raw.decode("utf-8", errors="replace")


@dataclass
class CsvRecord:
    first_line: int
    last_line: int
    fields: Optional[List[str]]  # None when the record cannot be used (see error)
    error: Optional[str] = None
    raw: Optional[List[str]] = None  # what csv made of an unusable record, if anything

    @property
    def where(self) -> str:
        return lines_label(self.first_line, self.last_line)


class CsvFile:
    """One export: its header (mapped to our fields) and its records, streamed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = self.path.name
        try:
            self.size = self.path.stat().st_size
            self._binary = open(self.path, "rb")
        except OSError as error:
            raise ImportFileError(f"{self.path}: cannot be read ({error.strerror or error})") from None
        self._lines = _Lines(self._binary)  # type: ignore[arg-type]
        self._reader = csv.reader(self._lines)
        header = self._next()
        if header is None:
            self.close()
            raise ImportFileError(f"{self.path}: the file is empty (expected a header row)")
        if header.fields is None:
            self.close()
            raise ImportFileError(f"{self.path}: the header row cannot be read ({header.error})")
        self.header = [name.replace("\ufeff", "").strip() for name in header.fields]
        self.columns: Dict[str, int] = {}  # normalized header name → index (the first, if repeated)
        for index, name in enumerate(self.header):
            self.columns.setdefault(normalize_header(name), index)

    @property
    def done_bytes(self) -> int:
        return self._lines.bytes

    def close(self) -> None:
        self._binary.close()

    def kind(self) -> Optional[str]:
        """"orders", "customers", or None when the header is neither Shopify export."""
        if "financial status" in self.columns or "lineitem name" in self.columns:
            return "orders"
        if "email" in self.columns and ({"first name", "last name", "customer id", "total spent"} & set(self.columns)):
            return "customers"
        return None

    def mapping(self, spec: Dict[str, Tuple[str, ...]], required: Sequence[str], kind: str) -> Dict[str, int]:
        """Our field → column index; refuses the file when a required column is missing."""
        found: Dict[str, int] = {}
        for key, names in spec.items():
            for name in names:
                if normalize_header(name) in self.columns:
                    found[key] = self.columns[normalize_header(name)]
                    break
        needed = list(required)
        if any(key in found for key in LINE_COLUMNS if key in spec):
            needed += [key for key in LINE_COLUMNS if key in spec]
        missing = [spec[key][0] for key in needed if key not in found]
        if missing:
            raise ImportFileError(
                f"{self.path}: not a Shopify {kind} export: missing column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (the header has: {', '.join(name for name in self.header if name) or 'nothing'})"
            )
        return found

    def _next(self) -> Optional[CsvRecord]:
        while True:
            before = self._lines.lines
            try:
                fields = next(self._reader)
            except StopIteration:
                return None
            except (csv.Error, _LineTooLong) as error:
                return CsvRecord(before + 1, max(self._lines.lines, before + 1), None, f"not valid CSV: {error}")
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if self._lines.last_undecodable > before:
                return CsvRecord(before + 1, max(self._lines.lines, before + 1), None,
                               "is not UTF-8 text (export the file as UTF-8)", fields)
            return CsvRecord(before + 1, max(self._lines.lines, before + 1), fields)

    def records(self) -> Iterator[CsvRecord]:
        width = len(self.header)
        try:
            while True:
                record = self._next()
                if record is None:
                    return
                if record.fields is not None and len(record.fields) != width:
                    hint = " (an unclosed quote?)" if record.last_line > record.first_line else ""
                    record = CsvRecord(
                        record.first_line, record.last_line, None,
                        f"has {len(record.fields)} fields, the header has {width}{hint}", record.fields,
                    )
                yield record
        finally:
            self.close()


def normalize_header(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").split()).lower()


def lines_label(first: int, last: int) -> str:
    """ "line 7" or "lines 7-9": where a record is in its file."""
    return f"line {first}" if first == last else f"lines {first}-{last}"


T = TypeVar("T")


def run_with_progress(err: TextIO, work: Callable[["ProgressBar"], T]) -> Optional[T]:
    """Run an import with a progress bar on `err`; None (and the reason on `err`) when the file is unusable
    or the database failed part way — the command then exits 2."""
    try:
        bar = ProgressBar(err)
        try:
            return work(bar)
        finally:
            bar.close()
    except ImportFileError as error:
        print(f"error: {error}", file=err)
        print("nothing was imported", file=err)
    except OperationalError as error:
        detail = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        print(f"error: the store database failed during the import: {detail}", file=err)
        print("the batches committed before the failure stay imported; run the same command again to finish", file=err)
    return None


def rejection_lines(
    rejected: int, by_reason: Mapping[str, int], rejections: Sequence[object], reasons: Mapping[str, str]
) -> List[str]:
    """The rejected part of an import summary: the total, the count per reason, then each rejection
    (as many as were kept) — shared by every importer so their reports read alike."""
    if not rejected:
        return ["rejected: none"]
    lines = [f"rejected: {rejected:,}"]
    lines.extend(f"  {label}: {by_reason[reason]:,}" for reason, label in reasons.items() if by_reason.get(reason))
    lines.extend(f"  {rejection}" for rejection in rejections)
    if rejected > len(rejections):
        lines.append(f"  … and {rejected - len(rejections):,} more not listed")
    return lines


class ProgressBar:
    """On a terminal, tqdm on stderr when it is installed (Rasa brings it), else a plain one-line bar; into a
    file or a pipe (a log, CI), a plain line at each further tenth of the file, which stays readable there
    (a bar redrawn with carriage returns becomes one endless line in a log)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._bar = None
        self._done = 0
        self._tenths_told = -1
        self._started = time.monotonic()
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self._tqdm = None
        if self.interactive:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm comes with Rasa
                pass
            else:
                self._tqdm = tqdm

    def __call__(self, done: int, total: int, rows: int) -> None:
        if not self.interactive:
            tenths = 10 * done // total if total else 10
            if tenths > self._tenths_told:
                self._tenths_told = tenths
                self.stream.write(f"import {tenths * 10:3d}% {rows:,} rows {time.monotonic() - self._started:.0f} s\n")
                self.stream.flush()
        elif self._tqdm is not None:
            if self._bar is None:
                self._bar = self._tqdm(total=total, unit="B", unit_scale=True, desc="import", file=self.stream,
                                       mininterval=0.5)
            self._bar.update(max(0, done - self._done))
            self._bar.set_postfix(rows=f"{rows:,}", refresh=False)
        else:
            width = 30
            filled = width * done // total if total else width
            self.stream.write(f"\rimport [{'#' * filled}{'.' * (width - filled)}] {done * 100 // max(total, 1):3d}% {rows:,} rows")
            self.stream.flush()
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.interactive and self._tqdm is None and self._done:
            self.stream.write("\n")
