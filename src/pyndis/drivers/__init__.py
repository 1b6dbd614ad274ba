"""Sample NDIS drivers, written like real ones: handlers with DDI names calling only DDIs.

NDIS 5.x connectionless samples:

=====================  ===========================================================================
:mod:`.null5`           a miniport that finishes every send at once (serialized or deserialized,
                        MiniportSend and/or MiniportSendPackets): the benchmark's miniport
:mod:`.simnic5`         the driver of a simulated Ethernet NIC: completion order, faults,
                        reset, cable pull, receive indications (serialized or deserialized)
:mod:`.nichw`           that NIC's hardware (no NDIS inside): transmit ring, link rate and
                        latency, link, address filter, hardware loopback, a wire to other kernels
:mod:`.loopback5`       a miniport that indicates every frame sent back as a receive
:mod:`.ndisprot5`       an ndisprot-like protocol: raw frames in and out, descriptor reuse
:mod:`.passthru5`       a pass-through intermediate driver that repackages every packet
=====================  ===========================================================================
"""

from __future__ import annotations

from .loopback5 import Loopback5, LoopbackAdapter
from .ndisprot5 import NdisProt5, NdisProtOpen
from .null5 import NullAdapter, NullMiniport, NullMiniportBoth, NullMiniportPackets
from .passthru5 import Passthru5, PtAdapter
from .simnic5 import SimNic5, SimNic5Single, SimNicAdapter

__all__ = [
    "Loopback5",
    "LoopbackAdapter",
    "NdisProt5",
    "NdisProtOpen",
    "NullAdapter",
    "NullMiniport",
    "NullMiniportBoth",
    "NullMiniportPackets",
    "Passthru5",
    "PtAdapter",
    "SimNic5",
    "SimNic5Single",
    "SimNicAdapter",
]
