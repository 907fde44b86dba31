"""MkDocs hook: the site's home page is the repository's README.md.

``docs/index.md`` is a placeholder; its Markdown is replaced by README.md with the README's
links into ``docs/`` made relative to the docs folder (``docs/api.md`` -> ``api.md``), so that
``mkdocs build --strict`` checks them like any other page's links.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parent / "README.md"
_DOCS_LINK = re.compile(r"\]\(docs/")


def on_config(config):
    """Rebuild on README.md changes under ``mkdocs serve``."""
    config.watch.append(str(README))
    return config


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Serve README.md (links into docs/ rewritten) as the home page."""
    if page.file.src_uri != "index.md":
        return markdown
    return _DOCS_LINK.sub("](", README.read_text(encoding="utf-8"))
