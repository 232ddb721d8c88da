"""The wheel carries the web app: `app.py`, `app_pages/` and the app's Streamlit settings are copied
into the package as `kb/webapp/`, so `lighthouse app` works from an installed wheel as from a checkout.
Everything else about the package is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
APP_FILES = ["app.py", ".streamlit/config.toml"]
APP_FOLDERS = ["app_pages"]


class BuildWithApp(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "kb" / "webapp"
        target.mkdir(parents=True, exist_ok=True)
        (target / "__init__.py").write_text('"""The web app, as the wheel carries it (see setup.py)."""\n')
        for name in APP_FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / name, target / name)
        for name in APP_FOLDERS:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(HERE / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithApp})
