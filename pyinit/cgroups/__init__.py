"""cgroups for pyinit run: placement, limits, device rules, OOM evidence, cleanup.

The public surface is what the process model calls (docs/cgroups.md):
``detect``, ``placement``, ``create`` (returns a ``Cgroup`` with ``add``, ``oom``,
``remove``) and ``sweep``.
"""

from pyinit.cgroups.host import Host, detect
from pyinit.cgroups.manager import (
    Cgroup,
    OomEvidence,
    Placement,
    SweepResult,
    create,
    oom_evidence,
    placement,
    sweep,
)

__all__ = ["Cgroup", "Host", "OomEvidence", "Placement", "SweepResult", "create", "detect",
           "oom_evidence", "placement", "sweep"]
