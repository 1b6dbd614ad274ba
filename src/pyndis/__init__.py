"""pyndis: an executable model of the Windows NDIS send path.

The public surface mirrors ndis.h: ``from pyndis import *`` gives the kernel class
:class:`Ndis` (whose methods are the DDIs that need the NDIS library: NdisSend,
NdisCoSendPackets, NdisSendNetBufferLists, NdisAllocatePacketPool, NdisOpenAdapter...), every
NDIS_STATUS and constant with its header value, the NdisError hierarchy, and the descriptor
macros and DDIs that work on a descriptor alone (NdisAllocatePacket, NdisChainBufferAtBack,
NdisQueryPacket, NET_BUFFER_LIST_INFO, NdisAllocateNetBufferList...). Sample drivers live in
:mod:`pyndis.drivers`, the testing kit in :mod:`pyndis.testing`.
"""

from __future__ import annotations

from .constants import *
from .errors import *
from .library.adapter import (
    NDIS_LINK_STATE,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    NDIS_STATUS_INDICATION,
)
from .library.binding import (
    NDIS_BIND_PARAMETERS,
    NDIS_OID_REQUEST,
    NDIS_OPEN_PARAMETERS,
    NET_PNP_EVENT_CODE,
    NET_PNP_EVENT_NOTIFICATION,
)
from .library.covc import (
    CO_ADDRESS_FAMILY,
    CO_CALL_MANAGER_PARAMETERS,
    CO_CALL_PARAMETERS,
    CO_MEDIA_PARAMETERS,
    CO_SAP,
    CO_SPECIFIC_PARAMETERS,
    FLOWSPEC,
)
from .library.kernel import NDIS_MINIPORT_TIMER, Ndis
from .mdl import *
from .nbl import *
from .nblpool import *
from .ownership import Event, Ownership
from .packet import *
from .pools import *
from .status import *
from .wire import Wire, run_kernels

__version__ = "0.1.0"
