"""The one exception the analysis raises for bad input."""

from __future__ import annotations

from study.vocabulary.errors import UserError


class AnalysisError(UserError):
    """The input cannot be analysed; the message says what was wrong and what to do."""
