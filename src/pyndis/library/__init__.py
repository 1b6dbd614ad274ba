"""The NDIS library: kernel, drivers, adapters, bindings, VCs and the send paths."""
