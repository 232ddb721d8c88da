"""Keeping the vocabulary: curators add a theme or a synonym, merge two themes and retire one; each change
is written to `entries/vocabulary.yaml` with its history. The terms nobody recognises, offered to them as
synonyms or themes, are kb.vocabulary_candidates'.

    add_theme(kb, "open-data", "Open data", "Publishing data for anyone to use.", viewer=curator)
    add_synonym(kb, "data-quality", "data grading", viewer=curator)
    merge(kb, "dashboards-and-reporting", "data-quality", viewer=curator)   # proposes retags for review
    retire(kb, "legacy-infrastructure", "split into the themes that replaced it", viewer=curator)
    vocabulary_history(kb, curator)         # who changed what, when, and the file as it was before

Who may is kb.access's `keeps_the_vocabulary`. Every change is one step under the entries folder's lock:
read the file, check, keep the version it replaces in `.history/vocabulary.yaml/` (with who, when and
what), and write the new one atomically. Only the list named (`themes` by default) is changed; every other
top-level list, every other key of an item and the comment block at the top of the file are kept.

A retired theme stays in the file (`retired: true`, with its reason and date): entries naming it still
resolve, `check` warns about them, and forms and facets no longer offer it. A merged theme becomes part of
the theme it was merged into (its label and synonyms are that theme's synonyms, its id in `replaces:`), so
old links and queries still find it; each published entry tagged with it gets a retag proposed as a
revision (kb.editing.propose_change), which a reviewer approves in the review queue like any other edit;
drafts and entries in review are left to their authors and named. Search reads the changed file at once
(kb.parts), with no sync, and the entries whose themes now read differently are indexed again at once
(`_reindex_changed`), so that search, facets and the glossary agree with the vocabulary. The data sources
(`list_name="data_sources"`) are kept with the same operations; their merge retags nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from kb.access import READABLE_STATUSES, can_edit, can_see, entry_meta, require_keeps_the_vocabulary
from kb.editing import propose_change
from kb.entries import Entry, is_valid_id, slugify
from kb.errors import Conflict, KBError, NotFound
from kb.store import HISTORY_DIR, atomic_write, content_hash, file_lock, kept_versions
from kb.vocabulary import LISTS, VOCABULARY_FILE, Theme, Vocabulary, _key, parse_terms
from kb.yamlfile import load_yaml

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

THEMES = "themes"
MAX_NAME = 100  # a label or a synonym
MAX_DEFINITION = 500
MAX_REASON = 300
HISTORY_FOLDER = VOCABULARY_FILE  # `.history/vocabulary.yaml/`: a dot, so never an entry's id
_VERSION_NAME = re.compile(r"^(\d{8}T\d{12}Z)-[0-9a-f]{12}\.yaml$")
_CHANGE_NOTE = "# change: "  # the first line of a kept version: who replaced it, and with what change
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class VocabularyChange:
    """One change of the vocabulary: when (UTC, ISO), who made it, what it was, and the file before it."""

    when: str
    who: str
    what: str
    previous: str


@dataclass(frozen=True)
class MergeResult:
    """A merge: the theme merged, the theme it went into, the entries (that the curator may see) whose retag
    now waits for review, and those skipped, each with why (`skipped_because`): a draft or an
    entry in review (its author retags it), one the curator may not edit, or one with an edit already
    waiting for review."""

    source: str
    target: str
    proposed: tuple[str, ...]
    skipped_because: tuple[tuple[str, str], ...] = ()

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(entry_id for entry_id, _ in self.skipped_because)


# --------------------------------------------------------------------------- changes


def add_theme(
    kb: KnowledgeBase,
    theme_id: str,
    label: str,
    definition: str = "",
    *,
    viewer: User | None,
    by: str = "",
    list_name: str = THEMES,
) -> Theme:
    """Add a theme (its id is made from the label when none is given)."""
    noun = LISTS.get(list_name, "theme")
    label = _name(label, "a label")
    theme_id = (theme_id or "").strip() or slugify(label)
    if not is_valid_id(theme_id):
        raise KBError(f"'{theme_id}' is not a valid theme id: use lowercase letters, digits and hyphens")
    definition = " ".join((definition or "").split())
    if len(definition) > MAX_DEFINITION:
        raise KBError(f"the definition is {len(definition)} characters; keep it under {MAX_DEFINITION}")

    def change(vocabulary: Vocabulary, items: list[dict]) -> tuple[list[dict], str, Theme]:
        if vocabulary.get(theme_id) is not None:
            raise Conflict(f"there is already a {noun} with id '{theme_id}' ({vocabulary.label(theme_id)})")
        for name in (theme_id, label):
            _free(vocabulary, name)
        item: dict[str, Any] = {"id": theme_id, "label": label}
        if definition:
            item["definition"] = definition
        return [*items, item], f"added the {noun} '{theme_id}' ({label})", Theme(theme_id, label, definition)

    return _change(kb, viewer, by, list_name, change)


def add_synonym(
    kb: KnowledgeBase, theme: str, synonym: str, *, viewer: User | None, by: str = "", list_name: str = THEMES
) -> Theme:
    """Add another name of a theme (named by its id, label or a synonym)."""
    noun = LISTS.get(list_name, "theme")
    synonym = _name(synonym, "the synonym")

    def change(vocabulary: Vocabulary, items: list[dict]) -> tuple[list[dict], str, Theme]:
        found = _theme(vocabulary, theme, noun)
        if found.retired:
            raise KBError(f"the theme '{found.id}' is retired; add the synonym to the theme that is used instead")
        if vocabulary.resolve(synonym) == found.id:
            raise Conflict(f"'{synonym}' already names the {noun} '{found.id}' ({found.label})")
        _free(vocabulary, synonym)
        item = _item(items, found.id)
        item["synonyms"] = [*_listed(item.get("synonyms")), synonym]
        return (
            items,
            f"added the synonym '{synonym}' to '{found.id}'",
            replace(found, synonyms=(*found.synonyms, synonym)),
        )

    return _change(kb, viewer, by, list_name, change)


def retire(
    kb: KnowledgeBase, theme: str, reason: str, *, viewer: User | None, by: str = "", list_name: str = THEMES
) -> Theme:
    """Retire a theme: it stays in the file, so entries naming it still resolve (and `check` warns about
    them), but forms and facets no longer offer it."""
    noun = LISTS.get(list_name, "theme")
    reason = " ".join((reason or "").split())
    if not reason:
        raise KBError("say why the theme is retired, so that people know what to use instead")
    if len(reason) > MAX_REASON:
        raise KBError(f"the reason is {len(reason)} characters; keep it under {MAX_REASON}")

    def change(vocabulary: Vocabulary, items: list[dict]) -> tuple[list[dict], str, Theme]:
        found = _theme(vocabulary, theme, noun)
        if found.retired:
            raise Conflict(f"the theme '{found.id}' is already retired")
        today = _today()
        item = _item(items, found.id)
        item.update({"retired": True, "retired_reason": reason, "retired_on": today})
        what = f"retired the theme '{found.id}': {reason}"
        return items, what, replace(found, retired=True, retired_reason=reason, retired_on=today)

    return _change(kb, viewer, by, list_name, change)


def merge(
    kb: KnowledgeBase, source: str, target: str, *, viewer: User | None, by: str = "", list_name: str = THEMES
) -> MergeResult:
    """Merge the theme `source` into `target`: `source`'s label and synonyms become synonyms of `target`
    and its id resolves to `target` from now on; every published entry tagged with `source` gets a retag
    proposed for review (never a silent rewrite). Drafts, entries in review, entries the curator may not
    edit and entries with an edit already waiting are skipped and named, with why (`MergeResult`).
    With `list_name="data_sources"` two data sources are merged; entries are left as they are."""
    noun = LISTS.get(list_name, "theme")
    merged: dict[str, Theme] = {}
    read: list[Vocabulary] = []  # the themes as the change read them, before it

    def change(vocabulary: Vocabulary, items: list[dict]) -> tuple[list[dict], str, Theme]:
        old, new = _theme(vocabulary, source, noun), _theme(vocabulary, target, noun)
        if old.id == new.id:
            raise KBError(f"'{source}' and '{target}' are the same {noun}; choose two different {noun}s")
        if new.retired:
            raise KBError(f"the theme '{new.id}' is retired; merge into a theme that is still used")
        item = _item(items, new.id)
        names = {_key(n) for n in (new.id, *new.names)}
        synonyms = _listed(item.get("synonyms"))
        for name in (old.label, *old.synonyms):
            if _key(name) not in names:
                names.add(_key(name))
                synonyms.append(name)
        item["synonyms"] = synonyms
        item["replaces"] = list(dict.fromkeys([*_listed(item.get("replaces")), old.id, *old.replaces]))
        merged["old"], merged["new"] = old, new
        read.append(vocabulary)
        kept = [i for i in items if str(i.get("id")) != old.id]
        return kept, f"merged the {noun} '{old.id}' into '{new.id}'", new

    _change(kb, viewer, by, list_name, change)
    old, new, before = merged["old"], merged["new"], read[-1]
    if list_name != THEMES:  # entries name data sources as written: kb.sources reads them through the list
        return MergeResult(old.id, new.id, (), ())
    proposed, skipped = _propose_retags(kb, before, old.id, new.id, viewer, by)
    return MergeResult(old.id, new.id, tuple(proposed), tuple(skipped))


DRAFT_SKIPPED = "a draft: its author retags it"
IN_REVIEW_SKIPPED = "in review: its author retags it, or its reviewer on approving it"
WAITING_SKIPPED = "an edit of it is already waiting for review: retag it by hand"
NOT_EDITABLE_SKIPPED = "you may not edit it"


def _propose_retags(
    kb: KnowledgeBase, before: Vocabulary, old: str, new: str, viewer: User | None, by: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """A retag waiting for review for each published (or archived) entry tagged with `old` (as read with the
    vocabulary before the merge), proposed as any edit that waits is (kb.editing.propose_change), so the
    access rules are the editor's. A draft or an entry in review is not rewritten behind its author's back:
    its themes still resolve (`old` reads as `new`), and it is skipped with the reason. Returned: the ids the
    viewer may see of those proposed, and of those skipped with why."""
    proposed, skipped = [], []

    def retag(entry: Entry) -> Entry:
        resolved = [before.resolve(t) or t for t in entry.themes]
        return replace(entry, themes=list(dict.fromkeys(new if t == old else t for t in resolved)))

    for entry_id, entry in sorted(kb.store.load().entries.items()):
        if old not in [before.resolve(t) or t for t in entry.themes]:
            continue
        if not can_see(viewer, entry_meta(entry)):
            continue  # nothing of a hidden entry: not proposed on this curator's behalf, and not named
        if entry.status not in READABLE_STATUSES:
            skipped.append((entry_id, DRAFT_SKIPPED if entry.status == "draft" else IN_REVIEW_SKIPPED))
            continue
        if not can_edit(viewer, entry):
            skipped.append((entry_id, NOT_EDITABLE_SKIPPED))
            continue
        try:
            propose_change(kb, entry_id, retag, viewer, by=by)
        except Conflict:  # an edit of it is waiting, or was proposed this very moment
            skipped.append((entry_id, WAITING_SKIPPED))
            continue
        except KBError as exc:  # changed meanwhile (made a draft, withdrawn): say why, go on with the others
            skipped.append((entry_id, str(exc)))
            continue
        proposed.append(entry_id)
    return proposed, skipped


# --------------------------------------------------------------------------- reading


def vocabulary_history(kb: KnowledgeBase, viewer: User | None) -> list[VocabularyChange]:
    """Every change of the vocabulary, newest first: who, when, what, and the file as it was before."""
    require_keeps_the_vocabulary(viewer, "read the vocabulary's history")
    folder = Path(kb.settings.entries_dir) / HISTORY_DIR / HISTORY_FOLDER
    if folder.is_symlink() or not folder.is_dir() or (folder.parent.is_symlink()):
        return []
    changes = []
    for when, text in kept_versions(folder, _VERSION_NAME):
        first, _, rest = text.partition("\n")
        note: dict[str, Any] = {}
        if first.startswith(_CHANGE_NOTE):
            try:
                note = json.loads(first[len(_CHANGE_NOTE) :])
            except ValueError:
                note = {}
            text = rest
        changes.append(VocabularyChange(when, str(note.get("who") or ""), str(note.get("what") or ""), text))
    return changes


# --------------------------------------------------------------------------- the file


def _change(kb: KnowledgeBase, viewer: User | None, by: str, list_name: str, change) -> Any:
    """Read, change and write the vocabulary file as one step under the entries folder's lock, keeping the
    version it replaces with who made the change and what it was; then re-index the entries whose themes
    read differently now (`_reindex_changed`)."""
    require_keeps_the_vocabulary(viewer, "change the vocabulary")
    if list_name not in LISTS:
        raise KBError(f"there is no list '{list_name}' to change; use one of: {', '.join(LISTS)}")
    who = viewer.name if viewer is not None else (by.strip() or "the operator")
    root = Path(kb.settings.entries_dir)
    path = root / VOCABULARY_FILE
    with file_lock(root / ".lock"):  # the entry store's lock: one writer in the folder at a time
        text, data = _read(path)
        items = data.get(list_name)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise KBError(f"{VOCABULARY_FILE} must hold '{list_name}:' followed by a list; fix it first")
        terms, problems = parse_terms(items, VOCABULARY_FILE, list_name)
        if problems:
            raise KBError(f"{VOCABULARY_FILE} has problems; fix them first: {problems[0]}")
        items = [dict(i) for i in items]  # the change may edit them; what was read stays as it was
        before = Vocabulary(terms)
        new_items, what, result = change(before, items)
        data[list_name] = new_items
        _keep_previous(root, text, who, what)
        atomic_write(path, _header(text) + render(data))
    if list_name == THEMES:
        _reindex_changed(kb, before, Vocabulary(parse_terms(new_items, VOCABULARY_FILE, list_name)[0]))
    return result


def _reindex_changed(kb: KnowledgeBase, before: Vocabulary, after: Vocabulary) -> list[str]:
    """Index again the entries whose themes read differently under the changed vocabulary (a term adopted
    as a theme or a synonym, a merge), so that search, facets and the glossary agree with it at once: the
    index holds each entry's themes as the vocabulary read them (kb.parts.normalise), and an entry file
    that did not change is not indexed again by a sync. The vocabulary is changed whatever happens here;
    an index that cannot be written is logged, and the next `python -m kb sync` brings it in step."""
    changed = [
        entry_id
        for entry_id, entry in sorted(kb.store.load().entries.items())
        if before.normalise(entry.themes, entry_id)[0] != after.normalise(entry.themes, entry_id)[0]
    ]
    try:
        kb.index_entries(changed, vocabulary=(before.reading, after.reading))
    except Exception:  # the vocabulary file is written and is the record: the change must not look failed
        log.warning("indexing %s after a vocabulary change failed", ", ".join(changed) or "nothing", exc_info=True)
    return changed


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    if path.is_symlink():
        raise KBError(f"{VOCABULARY_FILE} is a symbolic link; replace it with the file itself", where=path)
    if not path.exists():
        return "", {}
    try:
        text = path.read_text(encoding="utf-8")
        data = load_yaml(text) or {}
    except (UnicodeDecodeError, yaml.YAMLError):
        raise KBError(f"{VOCABULARY_FILE} cannot be read; run `python -m kb check` and fix it first") from None
    if not isinstance(data, dict):
        raise KBError(f"{VOCABULARY_FILE} must hold 'themes:' followed by a list of themes; fix it first")
    return text, data


def _keep_previous(root: Path, text: str, who: str, what: str) -> None:
    folder = root / HISTORY_DIR / HISTORY_FOLDER
    for part in (folder.parent, folder):
        if part.is_symlink():
            raise KBError(f"{part.relative_to(root)} is a symbolic link; replace it with a folder", where=part)
        part.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    note = _CHANGE_NOTE + json.dumps({"who": who, "what": what}, ensure_ascii=False)
    atomic_write(folder / f"{stamp}-{content_hash(text)[:12]}.yaml", f"{note}\n{text}")


def _header(text: str) -> str:
    """The comment block at the top of the file, kept as it was."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line if line.endswith("\n") else line + "\n")
    return "".join(lines)


class _Dumper(yaml.SafeDumper):
    """Lists of plain values on one line (`synonyms: [DSA, MoU]`), everything else in block style, a list's
    items indented under its key as the file has them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(isinstance(v, (str, int, float, bool)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat and bool(data))


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=False)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def render(data: dict[str, Any]) -> str:
    """The vocabulary file's data as YAML, in the file's own style (the top-level lists in their order)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000, indent=2)


# --------------------------------------------------------------------------- checks


def _name(text: str, what: str) -> str:
    name = " ".join((text or "").split())
    if not name or not _key(name):
        raise KBError(f"give {what}: a word or a few, with at least one letter or digit")
    if len(name) > MAX_NAME:
        raise KBError(f"{what} is {len(name)} characters; keep it under {MAX_NAME}")
    return name


def _theme(vocabulary: Vocabulary, name: str, noun: str = "theme") -> Theme:
    theme_id = vocabulary.resolve(name or "")
    theme = vocabulary.get(theme_id) if theme_id else None
    if theme is None:
        if noun != "theme":
            raise NotFound(f"there is no {noun} '{name}' in the vocabulary's {noun}s")
        raise NotFound(f"there is no theme '{name}' in the vocabulary; see `python -m kb themes` for its themes")
    return theme


def _free(vocabulary: Vocabulary, name: str) -> None:
    """Refuse a name that already names a theme: a name belongs to one theme only."""
    owner = vocabulary.resolve(name)
    if owner is not None:
        retired = "retired " if _theme(vocabulary, owner).retired else ""
        raise Conflict(
            f"'{name}' already names the {retired}theme '{owner}' ({vocabulary.label(owner)}); "
            "a name can belong to one theme only"
        )


def _item(items: list[dict], theme_id: str) -> dict:
    return next(i for i in items if str(i.get("id")) == theme_id)


def _listed(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


__all__ = [
    "MergeResult",
    "VocabularyChange",
    "add_synonym",
    "add_theme",
    "merge",
    "retire",
    "vocabulary_history",
]
