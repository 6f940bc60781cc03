"""Peak RSS of the calling process, measured so that a parent's memory is not counted.

Linux's ``ru_maxrss`` survives fork and exec: a child started by a parent holding 300 MB reports at
least 300 MB whatever it does itself, and ``RUSAGE_CHILDREN`` is the largest of every waited-for
child (a simulator included). ``VmHWM`` belongs to the address space, which exec replaces, so read
in the child it is the child's own peak.
"""

from __future__ import annotations

import resource


def own_peak_rss_mb() -> float:
    """The peak resident set of this process since its exec, in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
