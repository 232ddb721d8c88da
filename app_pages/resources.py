"""Everything built once per server process (st.cache_resource): the knowledge base and its model."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from kb import KnowledgeBase, Settings, SyncReport
from kb.identity import User, local_user


@dataclass(frozen=True)
class Loaded:
    kb: KnowledgeBase
    report: SyncReport  # what the start-up sync found, problems included


@st.cache_resource(show_spinner="Loading the knowledge base and bringing its index up to date…")
def loaded() -> Loaded:
    """Open the knowledge base from KB_* settings, sync it once, and load the model before the first search."""
    kb = KnowledgeBase(Settings())
    report = kb.sync()
    kb.embedder.embed(["warm up"])  # the first search should not wait for the model
    return Loaded(kb, report)


def knowledge_base() -> KnowledgeBase:
    return loaded().kb


def current_user() -> User:
    """The person using the app. A local user from KB_USER_* until sign-in exists."""
    return local_user()
