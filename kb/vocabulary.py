"""The shared vocabulary of themes: ids, labels, definitions and synonyms, used by validation and search.

It also names the data sources entries use (`data_sources:` in the same file, items shaped like themes), so
"ONS Postcode Directory" and "ONSPD" are one source in the data-source catalogue (kb.sources).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kb.errors import Problem
from kb.store import SYMLINK_PROBLEM
from kb.yamlfile import load_yaml

VOCABULARY_FILE = "vocabulary.yaml"


@dataclass(frozen=True)
class Theme:
    id: str
    label: str
    definition: str = ""
    synonyms: tuple[str, ...] = ()
    retired: bool = False  # kept so that entries naming it still resolve, but no longer offered
    retired_reason: str = ""
    retired_on: str = ""  # ISO date
    replaces: tuple[str, ...] = ()  # ids of themes merged into this one: they still resolve to it

    @property
    def names(self) -> tuple[str, ...]:
        """Every way of naming this theme: label first, then synonyms."""
        return (self.label, *self.synonyms)


def vocabulary_signature(entries_dir: Path | str) -> tuple | None:
    """What tells that the vocabulary file changed: its inode, size and modification time (an atomic
    write replaces the inode). None when there is no such file."""
    try:  # os.path, not pathlib: every search asks, and building the Path cost more than the lstat
        found = os.lstat(os.path.join(entries_dir, VOCABULARY_FILE))
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns, found.st_mode)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9&]+", " ", text.lower()).strip()


LISTS = {"themes": "theme", "data_sources": "data source"}  # the file's lists of items shaped like themes


def parse_terms(items: object, source: str, list_name: str = "themes") -> tuple[list[Theme], list[Problem]]:
    """The items of one list of the vocabulary file (`themes:` or `data_sources:`, each item an id, a label,
    a definition, synonyms...), and a problem for each item that cannot be read. A missing list is empty."""
    what = LISTS.get(list_name, "item")
    where = None if list_name == "themes" else list_name  # a theme's problems name no field, as before
    if items is None:
        return [], []
    if not isinstance(items, list):
        return [], [Problem(source, f"'{list_name}:' must be a list of {what}s, each with an id and a label")]
    terms, problems = [], []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("id"):
            problems.append(Problem(source, f"each {what} needs an id and a label", field=where, row=n))
            continue
        synonyms = item.get("synonyms") or ()
        if isinstance(synonyms, str):  # `synonyms: MoU` means one synonym, not three letters
            synonyms = [synonyms]
        if not isinstance(synonyms, (list, tuple)):
            problems.append(Problem(source, "synonyms must be a list, e.g. [DSA, MoU]", field=where, row=n))
            synonyms = ()
        replaces = item.get("replaces") or ()
        if isinstance(replaces, str):
            replaces = [replaces]
        if not isinstance(replaces, (list, tuple)):
            problems.append(Problem(source, f"replaces must be a list of {what} ids", field=where, row=n))
            replaces = ()
        terms.append(
            Theme(
                id=str(item["id"]),
                label=str(item.get("label") or item["id"]),
                definition=str(item.get("definition") or ""),
                synonyms=tuple(str(s) for s in synonyms if s is not None),
                retired=item.get("retired") is True,
                retired_reason=str(item.get("retired_reason") or ""),
                retired_on=str(item.get("retired_on") or "")[:10],
                replaces=tuple(str(r) for r in replaces if r is not None),
            )
        )
    return terms, problems


def source_key(name: str) -> str:
    """The rule for when two data-source names are the same source: they differ only in case, spacing or
    punctuation ("ONS Postcode Directory", "ons postcode-directory", "O.N.S. Postcode Directory")."""
    text = unicodedata.normalize("NFKC", str(name)).casefold()
    text = re.sub(r"(?<=\w)[.'’](?=\w)|(?<=\w)\.(?!\w)", "", text)  # "O.N.S." is "ONS", "Land Registry's" one word
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


@dataclass
class Vocabulary:
    themes: list[Theme] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sources: list[Theme] = field(default_factory=list)  # data sources, by the same item shape as themes

    def __post_init__(self) -> None:
        self._lookup: dict[str, str] = {}
        for theme in self.themes:
            for name in (theme.id, *theme.names, *theme.replaces):
                self._lookup.setdefault(_key(name), theme.id)
        self._sources: dict[str, str] = {}
        for source in self.sources:
            for name in (source.id, *source.names):
                self._sources.setdefault(source_key(name), source.id)

    @functools.cached_property
    def reading(self) -> str:
        """A digest of how this vocabulary reads an entry's themes (every name it knows and the theme that name
        resolves to): two vocabularies with the same digest normalise every entry alike. "" when the file
        could not be read at all, which reads no theme."""
        if not self.themes and self.problems:
            return ""
        names = json.dumps(sorted(self._lookup.items()), ensure_ascii=False)
        return hashlib.sha256(names.encode("utf-8")).hexdigest()

    def offers(self, theme_id: str) -> bool:
        """The rule for a theme that may still be chosen (by a form, a facet, the glossary, a suggestion): not
        retired and not merged into another. A theme the vocabulary does not know is offered as written."""
        theme = self.get(theme_id)
        if theme is not None:
            return not theme.retired
        return not any(theme_id in t.replaces for t in self.themes)

    @property
    def offered(self) -> list[Theme]:
        """The vocabulary's themes that may still be chosen (`offers`), in the file's order."""
        return [t for t in self.themes if self.offers(t.id)]

    @classmethod
    def load(cls, entries_dir: Path | str) -> Vocabulary:
        """Read `vocabulary.yaml` beside the entries; a missing file is an empty vocabulary."""
        path = Path(entries_dir) / VOCABULARY_FILE
        if path.is_symlink():
            return cls(problems=[Problem(path.name, SYMLINK_PROBLEM)])
        if not path.is_file():
            return cls()
        try:
            data = load_yaml(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            return cls(problems=[Problem(path.name, "is not UTF-8 text; save it as UTF-8")])
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            reason = getattr(exc, "problem", None) or "invalid YAML"
            return cls(problems=[Problem(path.name, f"is not valid YAML{where} ({reason}); fix it")])
        items = data.get("themes") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return cls(problems=[Problem(path.name, "must hold 'themes:' followed by a list of themes")])
        themes, problems = parse_terms(items, path.name, "themes")
        sources, source_problems = parse_terms(data.get("data_sources"), path.name, "data_sources")
        return cls(themes, problems + source_problems, sources)

    def get(self, theme_id: str) -> Theme | None:
        return next((t for t in self.themes if t.id == theme_id), None)

    def resolve(self, name: str) -> str | None:
        """The theme id for an id, label or synonym (any case), or None if it is not in the vocabulary."""
        return self._lookup.get(_key(name))

    def resolve_source(self, name: str) -> str | None:
        """The id of the vocabulary's data source with this id, label or synonym (compared by source_key),
        or None when the vocabulary does not name it."""
        return self._sources.get(source_key(name))

    def source(self, source_id: str) -> Theme | None:
        return next((s for s in self.sources if s.id == source_id), None)

    def label(self, theme_id: str) -> str:
        theme = self.get(theme_id)
        return theme.label if theme else theme_id

    def widen(self, theme_ids: tuple[str, ...]) -> tuple[str, ...]:
        """A theme filter's values as the vocabulary now reads them: each one's theme (a label or synonym
        resolved to its id) and the ids of the themes merged into it, so that a link to a merged theme, and
        a filter by the theme it went into, find entries tagged either way while their retags wait."""
        out: list[str] = []
        for value in theme_ids:
            theme_id = self.resolve(value) or value
            theme = self.get(theme_id)
            out += [value, theme_id, *(theme.replaces if theme else ())]
        return tuple(dict.fromkeys(out))

    def counts_under(self, theme_id: str) -> str:
        """The theme a theme id held by the index counts under now, as `widen` reads a filter: the theme it was
        merged into, or itself. A facet's count of a theme is then what filtering by it finds."""
        return next((t.id for t in self.themes if theme_id in t.replaces), theme_id)

    def names_a_theme(self, text: str) -> bool:
        """Whether the text names any theme (by id, label, synonym or a merged theme's id), as whole words."""
        return any(
            self._pattern(name).search(text)
            for theme in self.themes
            for name in (theme.id.replace("-", " "), *theme.names, *(r.replace("-", " ") for r in theme.replaces))
            if name.strip()
        )

    def expand(self, query: str) -> list[str]:
        """The other names of every theme the query names ("DSA" -> "data sharing agreement", "MoU", ...).

        Names match as whole words in any case, so "IG" matches "IG approval" but not "big".
        """
        extra: dict[str, str] = {}
        for theme in self.themes:
            names = (theme.id.replace("-", " "), *theme.names)
            if any(self._pattern(name).search(query) for name in names):
                for name in names:
                    if not self._pattern(name).search(query):
                        extra.setdefault(name.lower(), name)
        return list(extra.values())

    @staticmethod
    def _pattern(name: str) -> re.Pattern[str]:
        words = [re.escape(w) for w in re.split(r"[\s-]+", name.strip()) if w]
        return re.compile(r"(?<!\w)" + r"[\s-]+".join(words) + r"(?!\w)", re.I)

    def normalise(self, themes: list[str], source: str) -> tuple[list[str], list[Problem]]:
        """Map each theme to its id; unknown themes are kept as written and reported."""
        out, problems = [], []
        for name in themes:
            theme_id = self.resolve(name)
            theme = self.get(theme_id) if theme_id else None
            if theme is not None and theme.retired:
                why = f" ({theme.retired_reason})" if theme.retired_reason else ""
                problems.append(
                    Problem(
                        source,
                        f"theme '{theme.id}' is retired{why}; choose another theme from the vocabulary "
                        "(python -m kb themes)",
                        field="themes",
                        severity="warning",
                    )
                )
            if theme_id is None:
                problems.append(
                    Problem(
                        source,
                        f"theme '{name}' is not in the vocabulary; use one of its ids "
                        f"(python -m kb themes) or add it to {VOCABULARY_FILE}",
                        field="themes",
                        severity="warning",
                    )
                )
                theme_id = name
            if theme_id not in out:
                out.append(theme_id)
        return out, problems
