"""aifw: a transparent, OpenAI-compatible AI firewall (reverse proxy)."""

__version__ = "0.1.0"
