"""An entry's file: YAML front matter for the fields, `## ` sections for the story. Parsing a file or an
entry's dict form gives the Entry and its warnings, or an EntryError listing every error (file, field,
what to do); rendering writes the file back.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import yaml

from kb.entries import (
    EVIDENCE_GRADES,
    KINDS,
    LIGHTHOUSE_FIELDS,
    LIGHTHOUSE_PART_SEVERITY,
    LIGHTHOUSE_STAGES,
    MAX_ID,
    MAX_SUMMARY,
    MAX_TITLE,
    OUTCOMES,
    REQUIRED,
    SECTIONS,
    STATUSES,
    VISIBILITIES,
    Entry,
    Lighthouse,
    is_valid_id,
    required_fields,
    slugify,
)
from kb.entry_fields import FieldReader, data_source_items, read_data_sources, read_history, read_reuse, split_sections
from kb.errors import EntryError, Problem
from kb.yamlfile import DuplicateKey, load_yaml

FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)


def entry_from_dict(
    data: dict[str, Any], source: str, sections: dict[str, str] | None = None, *, require_id: bool = True
) -> tuple[Entry, list[Problem]]:
    """Validate a mapping of fields into an Entry and its warnings, or raise EntryError listing every error.

    With require_id=False a missing id is left empty, for a new entry whose id is made from its title.
    """
    f = FieldReader(data, source)
    draft = str(data.get("status") or "").strip().lower() == "draft"
    required = required_fields("draft" if draft else "")
    for name in required if require_id else [r for r in required if r != "id"]:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            f.problem(name, "is required but missing; add it to the front matter")

    entry_id = f.text("id", MAX_ID)
    if entry_id and not is_valid_id(entry_id):
        f.problem(
            "id",
            f"'{entry_id}' is not a safe id; use lowercase letters, digits and hyphens, e.g. '{slugify(entry_id)}'",
        )

    lighthouse = None
    raw_lh = data.get("lighthouse")
    if raw_lh not in (None, False, ""):
        if not isinstance(raw_lh, dict):
            f.problem("lighthouse", "must be a mapping with stage, impact, benefits and reused_by")
        else:
            stage = f.text("stage", data=raw_lh).lower()
            if stage not in LIGHTHOUSE_STAGES:
                f.problem("lighthouse.stage", f"'{stage}' is not a stage; use one of: {', '.join(LIGHTHOUSE_STAGES)}")
            reused_by, reuse = read_reuse(f, raw_lh.get("reused_by"))
            lighthouse = Lighthouse(
                stage=stage,
                impact=f.text("impact", MAX_SUMMARY, data=raw_lh),
                benefits=f.items("benefits", data=raw_lh),
                reused_by=reused_by,
                history=read_history(f, raw_lh.get("history")),
                review_by=f.date_value(raw_lh.get("review_by"), "lighthouse.review_by", LIGHTHOUSE_PART_SEVERITY),
                reuse=reuse,
            )
            for name in raw_lh:
                if name not in LIGHTHOUSE_FIELDS:
                    f.problem(
                        f"lighthouse.{name}",
                        f"is not a lighthouse field; use {', '.join(LIGHTHOUSE_FIELDS)}",
                        severity="warning",
                    )

    sources, quality = read_data_sources(f, data.get("data_sources"), data.get("data_quality"))

    known = {fld for fld in Entry.__dataclass_fields__} - {"sections"}
    for name in data:
        if name not in known:
            f.problem(
                str(name),
                "is not a known field; check its spelling (see the README's entry format)",
                severity="warning",
            )

    entry = Entry(
        id=entry_id,
        title=" ".join(f.text("title", MAX_TITLE).split()),  # one line: passages use it as a heading
        summary=f.text("summary", MAX_SUMMARY),
        kind=f.choice("kind", KINDS),
        outcome=f.choice("outcome", OUTCOMES),
        organisation=f.text("organisation"),
        status=f.choice("status", STATUSES, "draft"),
        visibility=f.choice("visibility", VISIBILITIES, "public"),
        team=f.text("team"),
        contact=f.text("contact"),
        anonymous=f.flag("anonymous"),
        partners=f.items("partners"),
        themes=f.items("themes"),
        tags=f.items("tags"),
        data_sources=sources,
        data_quality=quality,
        started=f.date("started"),
        ended=f.date("ended"),
        phase=f.text("phase"),
        evidence=f.choice("evidence", EVIDENCE_GRADES),
        lighthouse=lighthouse,
        created=f.date("created"),
        updated=f.date("updated"),
        author=f.text("author"),
        reviewer=f.text("reviewer"),
        review_comment=f.text("review_comment", MAX_SUMMARY),
        revised_by=f.text("revised_by"),
        source=f.text("source", MAX_SUMMARY),
        related=f.items("related"),
        links=f.items("links"),
        sections=sections or {},
    )
    if entry.started and entry.ended and entry.ended < entry.started:  # a draft may be saved before it is fixed
        severity = "warning" if draft else "error"
        f.problem("ended", f"{entry.ended} is before started ({entry.started}); check both dates", severity)
    if any(p.severity == "error" for p in f.problems):
        raise EntryError(f.problems)
    return entry, f.problems


def parse_entry(text: str, source: str = "<entry>", *, require_id: bool = True) -> tuple[Entry, list[Problem]]:
    """Parse one entry file's text. Returns the entry and its warnings; raises EntryError."""
    if "\x00" in text:
        raise EntryError([Problem(source, "is a binary file, not Markdown text; remove it or replace it")])
    if not text.strip():
        raise EntryError([Problem(source, "is empty; write front matter between '---' lines, then the sections")])
    match = FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if not match:
        raise EntryError([Problem(source, "has no front matter; start the file with '---', the fields, then '---'")])
    try:
        data = load_yaml(match.group(1))
    except DuplicateKey as exc:
        first, second = exc.first_line + 2, exc.problem_mark.line + 2  # the front matter starts on line 2
        message = f"front matter gives '{exc.key}' twice (lines {first} and {second}); keep one of them"
        raise EntryError([Problem(source, message, field=str(exc.key))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise EntryError([Problem(source, f"front matter is not valid YAML{where} ({reason}); fix it")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2021-13-01 fails inside YAML's date parsing
        raise EntryError(
            [
                Problem(
                    source,
                    f"front matter has a value YAML cannot read ({exc}); "
                    "write dates as YYYY-MM-DD and quote unusual values",
                )
            ]
        ) from None
    if not isinstance(data, dict):
        raise EntryError([Problem(source, "front matter must be 'field: value' lines")])
    problems: list[Problem] = []
    sections = split_sections(match.group(2), source, problems)
    try:
        entry, warnings = entry_from_dict({str(k): v for k, v in data.items()}, source, sections, require_id=require_id)
    except EntryError as exc:
        raise EntryError(exc.problems + problems) from None
    if problems:
        raise EntryError(problems)
    return entry, warnings


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_entry(entry: Entry) -> str:
    """The file text of an entry: front matter with the fields set, then the sections in order."""
    data = entry.to_dict()
    sections = data.pop("sections")
    front = {k: v for k, v in data.items() if v not in ("", [], None, False) or k in REQUIRED}
    if entry.lighthouse is not None:
        lh = entry.lighthouse
        parts = {
            "stage": lh.stage,
            "impact": lh.impact,
            "benefits": lh.benefits,
            "reused_by": lh.reuse_items(),
            "history": [{k: v for k, v in asdict(h).items() if v} for h in lh.history],
            "review_by": lh.review_by,
        }
        front["lighthouse"] = {k: v for k, v in parts.items() if v not in ("", [])}
    front.pop("data_quality", None)  # the grades sit inside their data_sources items
    if entry.data_sources:
        front["data_sources"] = data_source_items(entry)
    header = yaml.dump(front, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    ordered = [s for s in SECTIONS if s in sections] + [s for s in sections if s not in SECTIONS]
    body = "".join(f"\n## {name}\n\n{sections[name].strip()}\n" for name in ordered)
    return f"---\n{header}---\n{body}"
