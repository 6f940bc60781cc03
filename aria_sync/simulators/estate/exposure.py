"""Which vulnerability definitions affect a machine, shared by the Tenable and Defender views.

Both vendors look at the same installed software, so their findings overlap in CVEs; each also sees
a little the other does not (Tenable's network checks, Defender's extra inventory).
"""

from __future__ import annotations

from dataclasses import dataclass

from aria_sync.simulators.estate.catalog import vulnerability_catalog
from aria_sync.simulators.estate.fleet import Machine
from aria_sync.simulators.estate.support import derived_rng


@dataclass(frozen=True)
class Exposure:
    tenable: tuple[int, ...]  # catalogue indexes, in finding order
    defender: tuple[int, ...]
    defender_unversioned: bool  # a software row without CVE (end-of-life product)


def machine_exposure(seed: int, machine: Machine) -> Exposure:
    """The deterministic exposure of ``machine`` at generation 0."""
    rng = derived_rng(seed, "exposure", machine.index)
    catalog = vulnerability_catalog()
    os_key = machine.os_key
    pool = catalog.software_vulns[os_key]
    if machine.kind == "network":
        chosen = rng.sample(pool, rng.randint(1, min(4, len(pool))))
    else:
        chosen = rng.sample(pool, min(len(pool), rng.randint(4, 30)))
    informational = catalog.informational[os_key]
    baseline = rng.sample(informational, rng.randint(min(4, len(informational)), len(informational)))
    misconfigurations = catalog.misconfigurations[os_key]
    weak_config = rng.sample(misconfigurations, rng.randint(0, min(3, len(misconfigurations))))
    tenable = tuple(baseline + weak_config + chosen) if machine.tenable_has_results else ()
    unchosen = [index for index in pool if index not in chosen]
    defender_only = rng.sample(unchosen, min(2, len(unchosen)))
    defender = tuple([index for index in chosen if rng.random() < 0.85] + defender_only)
    return Exposure(tenable=tenable, defender=defender, defender_unversioned=rng.random() < 0.2)
