"""pyndis: an executable model of the Windows NDIS send path."""

__version__ = "0.1.0"
