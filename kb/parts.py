"""The pieces a knowledge base is made of, each built on first use and shared by the facade
(kb.knowledge), the indexer, the retriever and the local mirror.

Building a piece costs only what it is used for: `check` and `show` read files and never open Chroma
or the model; an unchanged sync opens Chroma but never loads the model.
"""

from __future__ import annotations

from pathlib import Path

from kb.checked_files import CheckedFiles
from kb.chroma_checks import DATABASE, OPEN, TRUSTED, StoreDamaged, embedded_path
from kb.chroma_client import make_client
from kb.chroma_metadata import ChromaInProcess, FileChanges, MetadataWatch
from kb.config import Settings
from kb.embedder import Embedder, make_embedder
from kb.entries import Entry
from kb.errors import Problem
from kb.notes import NoteStore
from kb.store import EntryStore, file_lock, file_lock_if_free
from kb.vector_index import VectorIndex, collection_names
from kb.vocabulary import Vocabulary, vocabulary_signature


class Parts:
    """Settings, the entry files and their notes, the vocabulary, the embedder and the vector index."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, client=None):
        self.settings = settings
        self.store = EntryStore(settings.entries_dir)
        self.notes = NoteStore(settings.entries_dir)  # evidence notes, beside the entries
        self._embedder = embedder
        self._client = client
        self._index: VectorIndex | None = None
        self._metadata_watch = MetadataWatch(embedded_path(settings.index_dir), self.collection_names[1])
        self._store_changes = FileChanges(embedded_path(settings.index_dir) / DATABASE)
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_seen: tuple | None = None  # the file's signature when it was read

    @property
    def index(self) -> VectorIndex:
        """The vector index, connected on first use. Reading never makes a store: where there is none,
        IndexMissing says a sync builds it."""
        if self._index is None:
            self._index = self.connect(create=False)
        return self._index

    def writable_index(self, level: str = OPEN) -> VectorIndex:
        """The vector index for a writer (sync, save): an embedded store is made if there is none yet;
        `level` is how thoroughly the store is checked if it is opened now."""
        if self._index is None:
            self._index = self.connect(create=True, level=level)
        return self._index

    def connect(self, *, create: bool, level: str = OPEN) -> VectorIndex:
        client = self._client or self._open_store(create, level)
        # The embedder's name, not the setting's: an int8 model records its own name. Building the
        # embedder loads nothing; the model loads on the first text it embeds.
        owned = Path(self.settings.index_dir) if self.owns_store else None
        return VectorIndex(
            client, self.settings.collection, self.embedder.name, remote=not self.owns_store, index_dir=owned
        )

    def _open_store(self, create: bool, level: str):
        """Chroma's client on the store, checked at `level` first. A reader's opening (`level` OPEN) reads
        nothing where the record vouches for the store (`recorded_generation`), as the check that sync made
        would find it again; asked again while nobody writes, since a writer drops the record before it
        writes. Opening changes Chroma's database file, so the record then holds for this opening only.
        Without a record nothing waits for the writer's lock (and no index folder is made for it)."""
        if not self.owns_store or level != OPEN or self.recorded_generation() is None:
            return make_client(self.settings.index_dir, self.settings.chroma_url, create=create, level=level)
        with self.writing_if_free() as nobody_writes:
            if nobody_writes and self.recorded_generation() is not None:
                level = TRUSTED
            return make_client(self.settings.index_dir, create=create, level=level)

    def recorded_generation(self) -> str | None:
        """The mark the checked-files record vouches for: every file under `chroma/` and `lexical/` is as
        a sync that checked them left them (kb.checked_files), and the store's own mark, where it can be
        read from its file, is the recorded one. None otherwise, and for a store this folder does not own."""
        if not self.owns_store:
            return None
        stored = self.stored_generation()  # first: once Chroma is loaded here this is None at no cost
        recorded = self.checked_files.generation_if_unchanged()
        return None if recorded is None or (stored is not None and stored != recorded) else recorded

    @property
    def _write_lock(self) -> Path:
        return Path(self.settings.index_dir) / ".write.lock"

    def writing(self):
        """One index writer at a time on this machine: concurrent saves and syncs queue, never interleave."""
        return file_lock(self._write_lock)

    def writing_if_free(self):
        """The writer's lock if no write is under way now (yields True), else at once False."""
        return file_lock_if_free(self._write_lock)

    def forget_index(self) -> None:
        """Drop the connection (after the store was deleted): the next use connects afresh."""
        self._index = None

    @property
    def checked_files(self) -> CheckedFiles:
        """The record of the index folder's files as a sync left them after checking them (kb.checked_files)."""
        return CheckedFiles(self.settings.index_dir, self.settings.collection)

    @property
    def collection_names(self) -> tuple[str, str]:
        """(passages, entries): the two collections' names."""
        return collection_names(self.settings.collection)

    def generation(self) -> str | None:
        """The index's generation mark (None: no index yet). For an embedded store, while this process has
        not loaded Chroma, read from its database file (kb.chroma_metadata.MetadataWatch: every search asks,
        and this costs a `stat` while nothing changed), so a process that answers from the local mirror
        (`stats`, `show`) never imports chromadb; once it has, asked of Chroma, but only once that file
        may have taken a commit (kb.chroma_metadata.FileChanges: a `stat`); of a server, every time. Whether
        the index fits the model is checked where the model is used: opening the collections to embed or
        query."""
        stored = self._stored_metadata()
        if stored is not None and "generation" in stored:
            return stored["generation"]
        if self.owns_store:
            return self._store_changes.unless_changed(self.index.generation)
        return self.index.generation()

    def index_model(self) -> str:
        """The model the index was built with (its vectors are that model's), read as `generation` is."""
        stored = self._stored_metadata()
        if stored and stored.get("model"):
            return stored["model"]
        return self.index.built_with() or self.embedder.name

    def stored_generation(self) -> str | None:
        """The mark as the embedded store's file holds it, read without Chroma; None where that is not
        possible (see `_stored_metadata`)."""
        stored = self._stored_metadata()
        return stored.get("generation") if stored else None

    def _stored_metadata(self) -> dict[str, str] | None:
        """The entries collection's metadata from the embedded store's file; None when that is not possible
        (a server, Chroma loaded in this process, missing or unreadable: Chroma's own opening reports what
        is wrong)."""
        if not self.owns_store:
            return None
        try:
            return self._metadata_watch.read()
        except (StoreDamaged, ChromaInProcess):
            return None

    @property
    def owns_store(self) -> bool:
        """True for the embedded store under the index folder: ours to check, delete and rebuild (a
        server's store, or one handed in, is not)."""
        return not self.settings.chroma_url and self._client is None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings.model, self.settings.model_backend)
        return self._embedder

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary beside the entries, read again whenever its file changes (a curator's edit in this
        process or another): search, filters and forms use the new themes and synonyms at once, with no
        sync. Checking costs a `stat`; the file is read only when it was replaced or changed."""
        seen = vocabulary_signature(self.settings.entries_dir)
        if self._vocabulary is None or seen != self._vocabulary_seen:
            self._vocabulary = Vocabulary.load(self.settings.entries_dir)
            self._vocabulary_seen = seen
        return self._vocabulary

    def normalise(self, entry: Entry, source: str) -> list[Problem]:
        """Resolve the entry's themes against the vocabulary (ids, labels, synonyms); report unknown ones."""
        entry.themes, problems = self.vocabulary.normalise(entry.themes, source)
        return problems
