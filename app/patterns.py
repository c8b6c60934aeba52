"""Text rules that every domain's models and the input checks (`app.inputs`) share: what a name or an email may hold."""

from __future__ import annotations

__all__ = ("EMAIL_PATTERN", "TEXT_PATTERN")

# Characters no name or email may hold: C0 and C1 controls and DEL, and the invisible format characters that can
# disguise text (bidirectional overrides, embeddings and isolates, zero-width space, word joiner and invisible
# operators, byte order mark, interlinear annotation, soft hyphen, line and paragraph separators). Zero-width
# (non-)joiners U+200C/U+200D stay allowed: Persian, Indic scripts and emoji sequences need them. Written with
# \u escapes that Python and ECMAScript read alike (the pattern is published in the OpenAPI document).
_FORBIDDEN = (
    r"\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u08e2\u180e\u200b\u200e\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
TEXT_PATTERN = f"^[^{_FORBIDDEN}]+$"
"""A name: no control or invisible format characters (see `_FORBIDDEN`)."""
EMAIL_PATTERN = rf"^[^@\x20{_FORBIDDEN}]+@[^@\x20{_FORBIDDEN}]+\.[^@\x20{_FORBIDDEN}]+$"
"""`local@domain.tld` without spaces, control or invisible format characters."""
