"""The replica's entry records: every indexed entry's facet fields in columns (`EntryTable`), on which the
filter model's clauses run as masks (kb.filters), and the entries.jsonl file they are read from.

Chroma answers a `where` clause by reading its metadata rows: at 100,000 entries listing the entries a
reader may see takes seconds. The same clause over columns in memory takes milliseconds. The table is
used only while the replica matches the index's generation mark.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from kb.errors import KBError
from kb.filters import LIST_FIELDS, NUMERIC_FIELDS


class UnsupportedClause(KBError):
    """A clause the table cannot run: ask Chroma instead."""


class EntryTable:
    """Facet metadata of every entry, by column; `select` runs a `where` clause as a boolean mask.

    Built from a mapping or a stream of (entry id, record) pairs, so a large mirror is read line by
    line; `record` gives an entry's metadata back as written, so no second copy of the rows is kept.
    """

    def __init__(self, metadata: Mapping[str, Mapping[str, Any]] | Iterable[tuple[str, Mapping[str, Any]]]):
        pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
        ids: list[str] = []
        values: dict[str, list[Any]] = {}
        for n, (entry_id, row) in enumerate(pairs):
            ids.append(entry_id)
            for name, value in row.items():
                column = values.get(name)
                if column is None:
                    column = values[name] = [None] * n
                column.append(value)
            for column in values.values():
                if len(column) == n:  # a field this row lacks
                    column.append(None)
        columns = {}
        for name, items in values.items():
            columns[name] = np.empty(len(items), dtype=object)
            columns[name][:] = items
        self._fill(ids, columns)

    def _fill(self, ids: list[str], values: dict[str, np.ndarray]) -> None:
        """Set the table from its ids and each field's values (object arrays, None where missing)."""
        self.ids = np.empty(len(ids), dtype=object)
        self.ids[:] = ids
        self._values: dict[str, np.ndarray] = {}
        self._columns: dict[str, np.ndarray] = {}
        self._lists: dict[str, list[tuple[Any, ...]]] = {}
        self._contains: dict[tuple[str, Any], np.ndarray] = {}
        for name, column in sorted(values.items()):
            self._values[name] = column
            if name in LIST_FIELDS:
                self._lists[name] = [tuple(v or ()) for v in column.tolist()]
            elif name in NUMERIC_FIELDS:
                items = column.tolist()
                self._columns[name] = np.array([float(v) if isinstance(v, (int, float)) else np.nan for v in items])
            else:
                self._columns[name] = column
        self.position = {entry_id: i for i, entry_id in enumerate(ids)}
        self._missing = np.full(len(ids), None, dtype=object)
        self._missing.flags.writeable = False

    @classmethod
    def joined(cls, parts: list[tuple[EntryTable, np.ndarray | None]]) -> EntryTable:
        """Several tables' rows as one table, each part's rows picked by its mask (None: all), column by
        column from the parts' own columns: no record is read or converted again (a save at 100,000
        entries joins the base's table with the delta's)."""
        if len(parts) == 1 and parts[0][1] is None:
            return parts[0][0]
        picks = [np.arange(len(t)) if keep is None else np.flatnonzero(keep) for t, keep in parts]
        names = sorted(set().union(*(t._values for t, _ in parts)))
        table = cls({})
        table.ids = np.concatenate([t.ids[p] for (t, _), p in zip(parts, picks, strict=True)])
        for name in names:
            taken = [(t, p) for (t, _), p in zip(parts, picks, strict=True)]
            table._values[name] = np.concatenate(
                [t._values[name][p] if name in t._values else np.full(len(p), None, object) for t, p in taken]
            )
            if name in LIST_FIELDS:
                lists = [t._lists.get(name) for t, _ in taken]
                table._lists[name] = [
                    items for (t, p), column in zip(taken, lists, strict=True) for items in _picked(column, p)
                ]
            elif name in NUMERIC_FIELDS:
                table._columns[name] = np.concatenate(
                    [t._columns[name][p] if name in t._columns else np.full(len(p), np.nan) for t, p in taken]
                )
            else:
                table._columns[name] = table._values[name]
        table.position = {entry_id: i for i, entry_id in enumerate(table.ids.tolist())}
        table._missing = np.full(len(table.ids), None, dtype=object)
        table._missing.flags.writeable = False
        return table

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        """A field's values (floats with NaN for the numeric ones), None where an entry lacks it."""
        column = self._columns.get(name)
        return self._missing if column is None else column

    def record(self, position: int) -> dict[str, Any]:
        """The metadata of the entry at this position, as it was given."""
        return {name: column[position] for name, column in self._values.items() if column[position] is not None}

    def select(self, where: Mapping[str, Any] | None) -> np.ndarray:
        """True for the entries the clause allows."""
        if not where:
            return np.ones(len(self), dtype=bool)
        return self._clause(where)

    def ids_where(self, where: Mapping[str, Any] | None) -> frozenset[str]:
        return frozenset(self.ids[self.select(where)].tolist())

    # ----------------------------------------------------------------- the clause language

    def _clause(self, clause: Mapping[str, Any]) -> np.ndarray:
        if len(clause) != 1:  # Chroma reads several keys as an implicit "and"
            return np.logical_and.reduce([self._clause({k: v}) for k, v in clause.items()])
        ((key, value),) = clause.items()
        if key == "$and":
            return np.logical_and.reduce([self._clause(c) for c in value]) if value else np.ones(len(self), bool)
        if key == "$or":
            return np.logical_or.reduce([self._clause(c) for c in value]) if value else np.zeros(len(self), bool)
        if key.startswith("$"):
            raise UnsupportedClause(f"operator {key} at the top of a clause")
        if isinstance(value, Mapping):
            if len(value) != 1:
                return np.logical_and.reduce([self._field(key, op, v) for op, v in value.items()])
            ((op, operand),) = value.items()
            return self._field(key, op, operand)
        return self._field(key, "$eq", value)

    def _field(self, name: str, op: str, operand: Any) -> np.ndarray:
        if name in LIST_FIELDS:
            if op != "$contains":
                raise UnsupportedClause(f"{op} on the list field {name}")
            return self._holding(name, operand)
        if name not in self._columns:
            return np.zeros(len(self), dtype=bool)  # no entry has the field
        column = self._columns[name]
        present = ~np.isnan(column) if name in NUMERIC_FIELDS else np.not_equal(column, np.array(None))
        if op == "$eq":
            return present & _equal(column, operand)
        if op == "$ne":
            return present & ~_equal(column, operand)
        if op == "$in":
            return present & np.logical_or.reduce([_equal(column, v) for v in operand] or [np.zeros(len(self), bool)])
        if op == "$nin":
            return present & ~np.logical_or.reduce([_equal(column, v) for v in operand] or [np.zeros(len(self), bool)])
        if op in ("$gt", "$gte", "$lt", "$lte"):
            if name not in NUMERIC_FIELDS:
                raise UnsupportedClause(f"{op} on the text field {name}")
            with np.errstate(invalid="ignore"):
                compare = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}[op]
                return present & compare(column, float(operand))
        raise UnsupportedClause(f"operator {op}")

    def _holding(self, name: str, value: Any) -> np.ndarray:
        key = (name, value)
        if key not in self._contains:
            lists = self._lists.get(name) or [()] * len(self)
            self._contains[key] = np.fromiter((value in items for items in lists), dtype=bool, count=len(self))
        return self._contains[key]


def _picked(column: list[tuple[Any, ...]] | None, rows: np.ndarray) -> list[tuple[Any, ...]]:
    return [()] * len(rows) if column is None else [column[i] for i in rows.tolist()]


def _equal(column: np.ndarray, value: Any) -> np.ndarray:
    if column.dtype != object:
        return column == float(value)
    if isinstance(value, bool):  # True must not equal 1, as in Chroma's typed metadata
        return np.fromiter((v is value for v in column), dtype=bool, count=len(column))
    return np.asarray(column == value, dtype=bool)


def record_line(entry_id: str, metadata: dict) -> str:
    """One entry record as a line of an entries.jsonl file, as `read_records` reads it back."""
    return json.dumps({"id": entry_id, "metadata": metadata}, ensure_ascii=False) + "\n"


def read_records(lines: Iterable[str]) -> Iterator[tuple[str, dict]]:
    for line in lines:
        row = json.loads(line)
        yield row["id"], row["metadata"]


def lines_of(file, chunk: int = 1 << 20) -> Iterator[str]:
    """The lines of an open file, read at offsets (not through the file's position, which other readers
    share): so a segment reads its own records even after another process replaced its folder."""
    offset, rest = 0, b""
    while data := os.pread(file.fileno(), chunk, offset):
        offset += len(data)
        *lines, rest = (rest + data).split(b"\n")
        for line in lines:
            yield line.decode("utf-8") + "\n"
    if rest:
        yield rest.decode("utf-8")


_RECORD_ID_AT = len('{"id": ')  # where `record_line` puts the id's JSON string


_DECODER = json.JSONDecoder()


def record_lines(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(entry id, line) for each line of an entries.jsonl file, decoding only the id: copying 100,000
    kept records costs a second when each is parsed and written again."""
    for line in lines:
        if line.startswith('{"id": '):
            yield _DECODER.raw_decode(line, _RECORD_ID_AT)[0], line
        else:  # not as `record_line` writes it: read it whole
            yield json.loads(line)["id"], line
