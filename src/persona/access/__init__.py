"""Access: sources, their write keys, and secret keys for reading."""

from persona.access.keys import ApiKey, KeyKind, KeyStore, SQLKeyStore

__all__ = ["ApiKey", "KeyKind", "KeyStore", "SQLKeyStore"]
