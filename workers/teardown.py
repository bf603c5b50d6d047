"""Taking deployments off this host: `teardown`, the reverse of a build, serves both a
failed apply's rollback and `destroy`; `sweep` destroys whatever no live deployment owns.

Everything is found by its name (`lm<token>-...`, the link group, the ifalias, the
cgroup), not only through the journal, so half-built or already-gone labs go too, and
every step accepts "already gone".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from labplan import naming
from workers import hostguard
from workers.driver import Driver
from workers.errors import ApplyError
from workers.journal import Journal
from workers.kernel.cgroups import is_reservation_cgroup


def teardown(
    driver: Driver,
    token: str,
    group: int,
    report: Callable[[str], None],
    cgroup: str | None = None,
) -> None:
    """Reverse of the build: processes, firewall, host links, namespaces, cgroups (the
    reservation's too when this was its last lab), files."""
    cgroup = cgroup or token
    # Processes die and cgroups go while links and namespaces go.
    driver.start_removing_cgroup(cgroup)
    try:
        _remove_network(driver, token, group, report)
    finally:
        killed, removed = driver.finish_removing_cgroup(cgroup)
    if killed:
        report(f"{killed} processes in cgroup {cgroup}")
    if removed:
        report(f"cgroup {cgroup}")
    holder = cgroup.rpartition("/")[0]
    if holder and driver.remove_cgroup(holder):  # only when no lab is left in it
        report(f"cgroup {holder}")
    if driver.remove_files(token):
        report(f"files of {token}")


def _remove_network(driver: Driver, token: str, group: int, report: Callable[[str], None]) -> None:
    """Firewall table, host-side links, network namespaces of the deployment."""
    if driver.remove_firewall(token):
        report(f"nftables table {token}")
    prefix = token + "-"
    owned = [
        name
        for name, alias in driver.host_links()
        if name.startswith(prefix) or alias == naming.ALIAS_PREFIX + token
    ]
    driver.remove_link_group(group)
    for name in owned:
        driver.remove_link(name)  # those outside the group, if any
        report(f"link {name}")
    for name in driver.netns_names(prefix):
        if driver.remove_netns(name):
            report(f"netns {name}")


def _found_cgroup(driver: Driver, token: str) -> str:
    """Where a deployment without a journal has its cgroup: inside a reservation's if one
    holds it, else under the parent."""
    inside = [c for c in driver.cgroup_children() if c.rpartition("/")[2] == token]
    return next((c for c in inside if "/" in c), token)


class Teardown:
    """Destroy and sweep over one host's journal and kernel."""

    def __init__(
        self, journal: Journal, driver_factory: Callable[[], Driver], host: hostguard.HostGuard
    ) -> None:
        self.journal = journal
        self._driver_factory = driver_factory
        self.host = host

    def destroy(self, token: str) -> list[str]:
        """Remove everything of the deployment on this host; what was removed, by name."""
        record = self.journal.read(token)
        group = record.header.get("group") if record else None
        if group is None:
            deployment = naming.deployment_from_token(token)
            if deployment is None:
                raise ApplyError(f"{token!r} is not a deployment token")
            group = naming.link_group(deployment)
        removed: list[str] = []
        driver = self._driver_factory()
        try:
            cgroup = record.cgroup if record else _found_cgroup(driver, token)
            teardown(driver, token, int(group), removed.append, cgroup)
            if self.journal.remove(token):
                removed.append(f"journal {token}")
            self.host.sync(driver, self.journal)
        finally:
            driver.close()
        return removed

    def sweep(self, live: Iterable[str]) -> list[str]:
        """Destroy every deployment found on this host that is not in `live`."""
        keep = set(live)
        removed: list[str] = []
        for token in sorted(self.found_tokens() - keep):
            removed.extend(self.destroy(token))
        removed.extend(self._sweep_reservations())
        driver = self._driver_factory()
        try:
            self.host.sync(driver, self.journal)  # forwarding back as it was with no lab
        finally:
            driver.close()
        return removed

    def _sweep_reservations(self) -> list[str]:
        """Remove the reservations' cgroups no lab is left in (a crash between a lab's
        cgroup and its reservation's); one still holding a lab is kept."""
        removed: list[str] = []
        driver = self._driver_factory()
        try:
            for name in driver.cgroup_children():
                if is_reservation_cgroup(name) and driver.remove_cgroup(name):
                    removed.append(f"cgroup {name}")
        finally:
            driver.close()
        return removed

    def found_tokens(self) -> set[str]:
        """Tokens of every deployment with anything left on this host."""
        names: list[str] = list(self.journal.tokens())
        driver = self._driver_factory()
        try:
            # Flat names carry "-" after the token; others starting with "lm" are not ours.
            names += [n for n in driver.netns_names(naming.PREFIX) if "-" in n]
            for name, alias in driver.host_links():
                if name.startswith(naming.PREFIX) and "-" in name:
                    names.append(name)
                if alias and alias.startswith(naming.ALIAS_PREFIX):
                    names.append(alias.removeprefix(naming.ALIAS_PREFIX))
            # Deployments inside a reservation's cgroup are listed as "r5/lm1".
            names += [c.rpartition("/")[2] for c in driver.cgroup_children()]
            names += driver.firewall_tables()
        finally:
            driver.close()
        tokens = {name.split("-", 1)[0] for name in names}
        return {t for t in tokens if naming.deployment_from_token(t) is not None}
