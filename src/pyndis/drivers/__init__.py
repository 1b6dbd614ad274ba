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
:mod:`.common5`         what they share: pools, freeing packets, OID answers, the 802.3 miniport
                        handlers, a protocol's DriverEntry and first bind steps
=====================  ===========================================================================

CoNDIS 5.x samples: :mod:`.atmnic5` (an ATM-like NIC, an MCM with :mod:`.atmmcm`),
:mod:`.cmproto5` (a stand-alone call manager), both speaking :mod:`.atmsig`; :mod:`.coclient5`
(a client) with :mod:`.costream` (bulk streams). NDIS 6 samples: :mod:`.netvmini6` and
:mod:`.comini6` (a CoNDIS MCM), both on the NIC of :mod:`.nic6`; :mod:`.ndisprot6` and
:mod:`.coclient6` (a CoNDIS client); what they share is in :mod:`.common6`.
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
