"""YAML as every file of the project is read: safe types only, and a key given twice is an error.

PyYAML keeps the last of two equal keys without a word, so `visibility: organisation` followed by
`visibility: public` would quietly publish an entry. Every loader here refuses it instead, naming the key
and both lines, through the usual `yaml.YAMLError` (with `problem` and `problem_mark`) that callers already
turn into "file, line, what to do".
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKey(ConstructorError):
    """A mapping gives the same key twice."""

    def __init__(self, key: Any, first_line: int, mark: yaml.Mark):
        self.key, self.first_line = key, first_line  # lines counted from 0, as marks count them
        super().__init__(
            None, None, f"the key '{key}' is given twice (first on line {first_line + 1}); keep one of them", mark
        )


class StrictLoader(_Base):  # type: ignore[misc, valid-type]
    """The safe loader (C-accelerated where available) that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # The mapping's own keys only: a key merged in with `<<: *base` may be overridden, as YAML allows.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise DuplicateKey(key, seen[key], key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """Parse YAML text with `StrictLoader`; raises yaml.YAMLError (DuplicateKey for a repeated key)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (StrictLoader is a SafeLoader)
