"""incident-proctor: evaluate autonomous SRE agents on replayed incidents over A2A."""

__version__ = "0.1.0"
