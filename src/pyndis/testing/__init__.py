"""pyndis's testing kit: drivers and rigs for contract tests, shipped for users' tests too.

``buggy5`` holds NDIS 5.x drivers: scriptable well-behaved miniports and protocols, one buggy
driver per bug class of the send path (each names the error the library raises), and
:class:`~pyndis.testing.buggy5.Rig5`, which wires a kernel, an adapter and bound protocols and
checks at the end that nothing was lost and every pool balances.
"""

from __future__ import annotations

from .buggy5 import (
    CompleteInSendMiniport5,
    CompleteInSendPacketsMiniport5,
    DataChangingProtocol5,
    DoubleCompleteMiniport5,
    DoubleReturnProtocol5,
    EarlyWakeMiniport5,
    KeepingResourcesProtocol5,
    LookaheadProtocol5,
    LoopbackFlagProtocol5,
    Miniport5,
    NoStatusPacketsMiniport5,
    PacketsMiniport5,
    PendingCompleteMiniport5,
    Protocol5,
    ResendingProtocol5,
    ResourcesDeserializedMiniport5,
    ResourcesDeserializedPacketsMiniport5,
    Rig5,
    SilentDropMiniport5,
    SyncDeserializedMiniport5,
    ethernet_frame,
)

__all__ = [
    "CompleteInSendMiniport5",
    "CompleteInSendPacketsMiniport5",
    "DataChangingProtocol5",
    "DoubleCompleteMiniport5",
    "DoubleReturnProtocol5",
    "EarlyWakeMiniport5",
    "KeepingResourcesProtocol5",
    "LookaheadProtocol5",
    "LoopbackFlagProtocol5",
    "Miniport5",
    "NoStatusPacketsMiniport5",
    "PacketsMiniport5",
    "PendingCompleteMiniport5",
    "Protocol5",
    "ResendingProtocol5",
    "ResourcesDeserializedMiniport5",
    "ResourcesDeserializedPacketsMiniport5",
    "Rig5",
    "SilentDropMiniport5",
    "SyncDeserializedMiniport5",
    "ethernet_frame",
]
