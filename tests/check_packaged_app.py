"""Run by `make package` with the wheel's own Python: the web app the wheel carries starts and draws its
search page, from a folder that is not the checkout, with the flags `lighthouse app` would pass.

    .venv-package/bin/python tests/check_packaged_app.py entries
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def main(entries: Path) -> int:
    import kb
    from kb.cli_web import PACKAGED_APP, streamlit_flags

    installed = Path(kb.__file__).resolve().parent
    if PACKAGED_APP.parent.parent != installed or not PACKAGED_APP.is_file():
        print(f"the wheel carries no web app at {PACKAGED_APP}", file=sys.stderr)
        return 1
    flags = streamlit_flags(PACKAGED_APP.parent / ".streamlit" / "config.toml")
    if "--runner.postScriptGC" not in flags or "--server.address" not in flags:
        print(f"the app's settings did not come with it: {flags}", file=sys.stderr)
        return 1

    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # a user's own folder, away from the checkout, with their entries named
        os.environ.update(
            KB_ENTRIES_DIR=str(entries.resolve()),
            KB_INDEX_DIR=str(Path(folder) / "index"),
            KB_MODEL="hashing-bow",  # what is checked is the package, not the model
            ANONYMIZED_TELEMETRY="False",
            HF_HUB_OFFLINE="1",
        )
        from kb import KnowledgeBase

        KnowledgeBase().sync()
        app = AppTest.from_file(str(PACKAGED_APP), default_timeout=120).run()
        app.text_input(key="search_q").set_value("data sharing").run() if _has_search_box(app) else None
        problems = [str(e.value) for e in [*app.exception, *app.error]]
        cards = [str(link.value) for link in app.get("page_link")]  # each result's title links to its entry
        if problems or not _has_search_box(app) or not cards:
            print(f"the packaged app did not search: {problems or 'no search box or no results'}", file=sys.stderr)
            return 1
        print(f"the packaged app ran from {PACKAGED_APP} and found {len(cards)} results for 'data sharing'")
    return 0


def _has_search_box(app) -> bool:
    return any(box.key == "search_q" for box in app.text_input)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "entries").resolve()))
