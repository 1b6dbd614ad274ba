"""Suite-wide settings (kept tiny: no shared fixtures are needed yet).

Hypothesis runs without its per-example deadline, which is a wall-clock assertion (the suite
never asserts timings), and derandomized, so a run is reproducible like everything else in
pyndis. ``HYPOTHESIS_PROFILE=explore`` restores random search for a local bug hunt.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("pyndis", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pyndis"))
