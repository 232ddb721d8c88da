"""Reading a CSV (or tab-separated) register, with every row accounted for: a quote that is never closed,
or closes rows later, costs only the row it starts in."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from kb.errors import KBError, Problem
from kb.registers.cells import (
    Table,
    check_row_count,
    decode,
    encoding_note,
    header_names,
    read_bytes,
    rows_from_records,
)


def guess_delimiter(first_line: str) -> str:
    """The separator used most in the header line, outside quotes: Excel in many locales writes ';'."""
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


class _CsvRecords:
    """A CSV file's records with the csv module in strict mode, handed one physical line at a time.

    A quote that is never closed would otherwise make the rest of the file one cell, and a stray
    quote closed by another rows later would make those rows one record. Either way only the row
    the quote starts in is refused, and its later lines are read again as rows, so every row after
    it is still read. Records are numbered as a spreadsheet numbers rows (the header is row 1);
    lines are numbered as a text editor numbers them. Only the current record's lines are kept.
    """

    def __init__(self, text: str, delimiter: str, source: str):
        self.stream = io.StringIO(text, newline="")  # splits lines where the csv module splits them
        self.delimiter = delimiter
        self.source = source
        self.again: list[str] = []  # lines of a refused record to read again, the next one last
        self.record: list[str] = []  # the lines of the record being read
        self.first_line = 1  # the line number of record[0]
        self.header: list[str] = []
        self.records: list[tuple[int, list[str]]] = []
        self.problems: list[Problem] = []
        self.refused = 0

    def __iter__(self) -> _CsvRecords:
        return self

    def __next__(self) -> str:
        line = self.again.pop() if self.again else self.stream.readline()
        if not line:
            raise StopIteration
        self.record.append(line)
        return line

    def _reader(self) -> Any:
        return csv.reader(self, delimiter=self.delimiter, strict=True)

    def read(self) -> _CsvRecords:
        reader = self._reader()
        while True:
            self.first_line += len(self.record)
            self.record = []
            number = len(self.records) + self.refused + 1
            try:
                values = next(reader)
            except StopIteration:
                return self
            except csv.Error:
                check_row_count(number, self.source)
                self._refuse_bad_quote(number)
                reader = self._reader()  # a fresh reader: nothing of the failed record is carried over
                continue
            check_row_count(number, self.source)
            if self.header and len(self.record) > 1 and self._joins_rows(values):
                self._refuse_joined_rows(number)
                continue
            if self.header and self._may_join_two_rows():
                self._warn_of_a_possible_join(number)
            if not self.header:
                self.header = header_names(values, self.source, [], trim=False)
            self.records.append((number, values))

    def _refuse_joined_rows(self, number: int) -> None:
        _, cell, _ = self._quoted_cell(self.record[:1])
        message = (
            f"opens a quote at line {self.first_line} that closes only at line "
            f"{self.first_line + len(self.record) - 1}, across lines that read as rows of their own; "
            "those are read as rows. Close the quote in its own cell or remove it"
        )
        self._refuse(number, message, cell, read_again_from=1)

    def _refuse_bad_quote(self, number: int) -> None:
        """The record's lines up to the bad quote are this row; the lines after it are read again."""
        offset, cell, never_closed = self._quoted_cell(self.record)
        if never_closed:
            message = (
                f"opens a quote at line {self.first_line + offset} that is never closed; "
                "close it or remove the quote character"
            )
            self._refuse(number, message, cell, read_again_from=offset + 1)
            return
        message = (
            f"has a cell on line {self.first_line + offset} that starts with a quote and goes on after the "
            'closing one; put the whole cell in quotes and write each quote inside it twice (""), or remove the quotes'
        )
        self._refuse(number, message, cell, read_again_from=len(self.record))

    def _refuse(self, number: int, message: str, cell: int, *, read_again_from: int) -> None:
        if not self.header:
            raise KBError(f"{self.source}: the header row {message}")
        column = self.header[cell] if cell < len(self.header) else f"column {cell + 1}"
        self.problems.append(Problem(self.source, message, field=column, row=number))
        self.refused += 1
        self.again.extend(reversed(self.record[read_again_from:]))
        del self.record[read_again_from:]

    def _quoted_cell(self, lines: list[str]) -> tuple[int, int, bool]:
        """Where the last quoted cell in these lines of one record opened (which line, which cell),
        read as the csv module reads, and whether its quote was never closed.

        A quote closed with more text after it is the cell's own fault ('"Phase 2" review') unless that
        quote begins a later cell: then it is the opening quote of that cell, and the earlier one was
        never closed.
        """
        opened_line, opened_cell, cell, state = 0, 0, 0, "start"
        for offset, line in enumerate(lines):
            for position, char in enumerate(line):
                if state == "quoted":
                    state = "quote in quoted" if char == '"' else state
                elif state == "quote in quoted" and char not in (self.delimiter, "\r", "\n"):
                    if char == '"':
                        state = "quoted"  # a doubled quote is text
                        continue
                    begins_cell = position == 1 or line[position - 2] == self.delimiter
                    return opened_line, opened_cell, begins_cell
                elif char == '"' and state == "start":
                    opened_line, opened_cell, state = offset, cell, "quoted"
                elif char == self.delimiter:
                    cell, state = cell + 1, "start"
                else:
                    state = "in cell"
        return opened_line, opened_cell, state == "quoted"

    def _joins_rows(self, values: list[str]) -> bool:
        """A record over several lines that a stray quote has made of several rows.

        A cell's own line breaks leave the record in line with the header, and the lines inside such a
        cell are prose or blank, not rows. So a record is taken for joined rows when every line after
        its first reads as a row of this table on its own, and either its cells do not line up with the
        header or there are lines between its first and last. (Two lines that line up are ambiguous:
        'A,"Line one.' then 'Line two, and more.",x' is as likely a cell with a line break.) A table of
        one or two columns is too easily mistaken, and is left as the csv module reads it.
        """
        width = len(self.header)
        if width < 3:
            return False
        lined_up = len(values) >= width and not any(value.strip() for value in values[width:])
        if lined_up and len(self.record) < 3:
            return False
        return all(self._is_row(line) for line in self.record[1:])

    def _may_join_two_rows(self) -> bool:
        """A record of two lines whose second line reads as a row on its own: a cell with a line break,
        or a stray quote that swallowed the next row. Which one, only the person who wrote it can say."""
        return len(self.header) >= 3 and len(self.record) == 2 and self._is_row(self.record[1])

    def _warn_of_a_possible_join(self, number: int) -> None:
        _, cell, _ = self._quoted_cell(self.record[:1])
        column = self.header[cell] if cell < len(self.header) else f"column {cell + 1}"
        message = (
            f"has a quoted cell from line {self.first_line} to line {self.first_line + 1}, and line "
            f"{self.first_line + 1} reads as a row of its own; if it is one, a quote is missing on line "
            f"{self.first_line}: close it and import again"
        )
        self.problems.append(Problem(self.source, message, field=column, row=number, severity="warning"))

    def _is_row(self, line: str) -> bool:
        """The line on its own is one record with a cell for every column, not all of them empty."""
        try:
            cells = next(csv.reader([line], delimiter=self.delimiter, strict=True))
        except (csv.Error, StopIteration):
            return False
        return len(cells) == len(self.header) and any(cell.strip() for cell in cells)


def read_csv(path: Path, delimiter: str | None = None) -> Table:
    text, encoding = decode(read_bytes(path), path.name)
    if not text.strip():
        raise KBError(f"{path.name} is empty; the first row must name the columns")
    if not delimiter:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else guess_delimiter(text.split("\n", 1)[0])
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # huge cells are read, then cut and reported
    csv_records = _CsvRecords(text, delimiter, path.name).read()
    table = rows_from_records(csv_records.records, path.name, fixed_width=True)
    table.refused += csv_records.refused
    table.problems.extend(csv_records.problems)
    table.encoding = encoding
    table.problems[:0] = encoding_note(path.name, encoding)
    return table
