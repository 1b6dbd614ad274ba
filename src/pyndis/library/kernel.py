"""The Ndis kernel (skeleton; the library core is being written)."""

from __future__ import annotations

from ..hostctx import HostContext
from ..mdl import BufferDdis
from ..nblpool import NblPoolDdis
from ..pools import PacketPoolDdis
from ..verifier.core import Verifier


class Ndis(HostContext, BufferDdis, PacketPoolDdis, NblPoolDdis):
    """One emulated kernel: its drivers, adapters, bindings, pools and scheduler."""

    def __init__(
        self, *, seed: int = 0, verifier: bool = False, strict: bool = False, name: str = "host"
    ) -> None:
        super().__init__(seed=seed, verifier=verifier)
        self.name = name
        if verifier:
            self.verifier = Verifier(strict=strict)
