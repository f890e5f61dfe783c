"""Commonground: a neutral data-sharing escrow owned by neither party."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`commonground.Client` without importing httpx for everyone who imports the package."""
    if name == "Client":
        from .client import Client
        return Client
    raise AttributeError(name)
