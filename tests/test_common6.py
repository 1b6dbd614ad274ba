"""Tests for drivers/common6: the pieces the NDIS 6 sample drivers share."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pyndis.constants import NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, NDIS_RECEIVE_FLAGS_RESOURCES
from pyndis.drivers.common6 import (
    PAUSED,
    PAUSING,
    RUNNING,
    allocate_frame_pools,
    as_miniport,
    begin_pause,
    end_pause,
    frame_parts,
    frames_nbl,
    free_frame_pools,
    free_frames_nbl,
    return_flags,
)
from pyndis.errors import Culprit
from pyndis.library.kernel import Ndis
from pyndis.nbl import iter_nbs, nb_bytes
from pyndis.ownership import Ownership
from pyndis.status import NDIS_STATUS
from pyndis.testing.stack6 import build_stack


def test_frame_parts_wraps_a_lone_frame() -> None:
    assert frame_parts(b"ab") == [b"ab"]
    assert frame_parts(bytearray(b"ab")) == [bytearray(b"ab")]
    view = memoryview(b"ab")
    assert frame_parts(view) == [view]
    assert frame_parts([b"a", b"b"]) == [b"a", b"b"]
    assert frame_parts((b"a",)) == [b"a"]


def test_frames_nbl_describes_each_frame_with_one_nb_without_copying() -> None:
    ndis = Ndis()
    nbl_pool, nb_pool = allocate_frame_pools(ndis, None, "test")
    assert nbl_pool is not None and nb_pool is not None
    first, second = bytearray(b"first frame"), bytearray(b"second")
    nbl = frames_nbl(ndis, nbl_pool, nb_pool, [first, second])
    assert nbl is not None
    assert [nb_bytes(nb) for nb in iter_nbs(nbl)] == [b"first frame", b"second"]
    first[0:5] = b"FIRST"  # the NB describes the caller's bytes: no copy
    assert nb_bytes(next(iter_nbs(nbl))) == b"FIRST frame"
    free_frames_nbl(ndis, nbl)
    assert nbl.ownership is Ownership.FREE
    assert nbl_pool.outstanding == 0 and nb_pool.outstanding == 0
    free_frame_pools(ndis, nbl_pool, nb_pool)
    assert ndis.pools == []


@pytest.mark.parametrize("failing", ["nbl", "nb"])
def test_frames_nbl_leaves_nothing_allocated_when_a_pool_runs_out(failing: str) -> None:
    ndis = Ndis(verifier=True)
    nbl_pool, nb_pool = allocate_frame_pools(ndis, None, "test")
    assert nbl_pool is not None and nb_pool is not None
    (nbl_pool if failing == "nbl" else nb_pool).fail_next(1)
    assert frames_nbl(ndis, nbl_pool, nb_pool, [b"a", b"b", b"c"]) is None
    assert nbl_pool.outstanding == 0 and nb_pool.outstanding == 0
    free_frame_pools(ndis, nbl_pool, nb_pool)


def test_allocate_frame_pools_gives_both_or_neither() -> None:
    ndis = Ndis()
    ndis.nbl_pool_creation_failures = 1
    assert allocate_frame_pools(ndis, None, "test") == (None, None)
    assert ndis.pools == []
    nbl_pool, nb_pool = allocate_frame_pools(ndis, None, "test", "tnb")
    assert nbl_pool is not None and nb_pool is not None
    assert (nbl_pool.tag, nb_pool.tag) == ("test", "tnb")
    free_frame_pools(ndis, nbl_pool, None)
    free_frame_pools(ndis, None, nb_pool)
    assert ndis.pools == []


def test_return_flags_follow_the_indication_irql() -> None:
    assert return_flags(0) == 0
    assert return_flags(int(NDIS_RECEIVE_FLAGS_RESOURCES)) == 0
    assert return_flags(int(NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)) == 1


def test_as_miniport_marks_the_body_as_miniport_code_even_when_it_raises() -> None:
    ndis = Ndis()
    before = list(ndis.actors)
    with as_miniport(ndis):
        assert ndis.current_actor is Culprit.MINIPORT
    assert ndis.actors == before
    with pytest.raises(RuntimeError), as_miniport(ndis):
        raise RuntimeError
    assert ndis.actors == before


@dataclass
class Adapter:
    state: str = RUNNING
    pause_pending: bool = False
    busy: int = 0
    completed: list[str] = field(default_factory=list)

    def idle(self) -> bool:
        return self.busy == 0


def test_rule_58_pause_at_once_when_idle() -> None:
    a = Adapter()
    assert begin_pause(a) == NDIS_STATUS.SUCCESS
    assert a.state == PAUSED and not a.pause_pending


def test_rule_58_pause_pends_until_the_last_thing_comes_back() -> None:
    s = build_stack()
    handle = s.adapter
    completions: list[object] = []
    s.ndis.NdisMPauseComplete = completions.append  # type: ignore[method-assign]
    a = Adapter(busy=2)
    assert begin_pause(a) == NDIS_STATUS.PENDING
    assert a.state == PAUSING and a.pause_pending
    a.busy = 1
    end_pause(s.ndis, a, handle)
    assert completions == [] and a.state == PAUSING
    a.busy = 0
    end_pause(s.ndis, a, handle)
    end_pause(s.ndis, a, handle)  # once only
    assert completions == [handle] and a.state == PAUSED and not a.pause_pending


def test_end_pause_without_a_pause_does_nothing() -> None:
    s = build_stack()
    a = Adapter()
    end_pause(s.ndis, a, s.adapter)
    assert a.state == RUNNING
