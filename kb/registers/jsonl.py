"""Reading a JSONL register: one JSON object per line, nested objects flattened into dotted columns; a key
given twice refuses its row."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from kb.entry_fields import source_words
from kb.errors import KBError, Problem
from kb.registers.cells import (
    Cell,
    Table,
    cell_text,
    check_row_count,
    decode,
    encoding_note,
    is_empty,
    note_empty,
    read_bytes,
)


def read_jsonl(path: Path) -> Table:
    text, encoding = decode(read_bytes(path), path.name)
    records: list[tuple[int, dict[str, Cell]]] = []
    problems = encoding_note(path.name, encoding)
    refused, empty = 0, []
    # Split at line feeds only: str.splitlines would also break at characters JSON keeps inside strings.
    # Read lazily, so that the row cap stops a flood of lines before they are all in memory.
    for number, line in enumerate(io.StringIO(text, newline="\n"), start=1):
        check_row_count(number, path.name)
        if not line.strip():
            empty.append(number)
            continue
        try:
            data = json.loads(line, object_pairs_hook=_refuse_repeated_keys)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path.name, f"is not valid JSON ({exc.msg} at character {exc.pos + 1})", row=number))
            refused += 1
            continue
        except RepeatedKey as exc:  # the last value would win silently, as with a repeated YAML key
            problems.append(Problem(path.name, f"gives '{exc.key}' twice; keep one of them", field=exc.key, row=number))
            refused += 1
            continue
        if not isinstance(data, dict):
            problems.append(Problem(path.name, "must be one JSON object {...} per line", row=number))
            refused += 1
            continue
        records.append((number, _flatten(data)))
    if not records and not refused:
        raise KBError(f"{path.name} is empty; write one JSON object per line")
    header = list(dict.fromkeys(name for _, cells in records for name in cells))
    table = Table(header=header, problems=problems, refused=refused, encoding=encoding, spreadsheet=False)
    for number, cells in records:
        if is_empty(cells):
            empty.append(number)
        else:
            table.rows.append((number, {name: cells.get(name, "") for name in header}))
    last = records[-1][0] if records else 0
    note_empty(sorted(n for n in empty if n < last), path.name, problems)
    return table


class RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise RepeatedKey(key)
        data[key] = value
    return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Cell]:
    """Nested objects become dotted columns (lighthouse.stage, sections.Context); lists stay lists."""
    out: dict[str, Cell] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if name == "data_quality" and isinstance(value, dict):  # an export's grades: as the CSV has them
            out[name] = _quality_lines(value)
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = [v if isinstance(v, str) else _json_item(v) for v in value if v is not None]
        else:
            out[name] = cell_text(value)
    return out


def _quality_lines(value: dict[str, Any]) -> list[str]:
    """An export's `data_quality` (name -> {grades, graded}) as the words an import reads back, one line per
    source; a part that is not that shape is left as JSON, which the import then reports."""
    lines = []
    for name, item in value.items():
        grades = item.get("grades") if isinstance(item, dict) else None
        if not isinstance(grades, dict) or not all(isinstance(g, dict) for g in grades.values()):
            lines.append(_json_item({name: item}))
            continue
        pairs = {str(d): (cell_text(g.get("rating")), cell_text(g.get("note"))) for d, g in grades.items()}
        lines.append(source_words(str(name), pairs, cell_text(item.get("graded"))))
    return lines


def _json_item(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else cell_text(value)
