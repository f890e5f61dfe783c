"""Commonground: a neutral data-sharing escrow owned by neither party."""

__version__ = "0.1.0"
