"""A subscriber's library, read from the file they give: BibTeX, CSL JSON (Zotero's export), RIS, or a list
of arXiv ids and DOIs. ``read_library`` picks the reader by content and returns every usable entry, or
raises ``LibraryError`` naming every bad one (nothing is used from a bad file)."""

from digest.references.entries import LibraryError, Reference
from digest.references.reader import MAX_ENTRIES, read_library

__all__ = ["MAX_ENTRIES", "LibraryError", "Reference", "read_library"]
