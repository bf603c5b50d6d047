"""Egress shaping on a link: tbf for a rate, netem for delay, jitter and loss (with tbf
under it when both are asked). Replacing the root qdisc makes it idempotent."""

from __future__ import annotations

import errno

from workers.kernel.links import Links

MIN_BURST = 16 * 1024  # bytes; at least a few full frames, like tc's advice for tbf
LATENCY = "50ms"  # how long a packet may wait in tbf before being dropped


class Qdiscs:
    def __init__(self, links: Links) -> None:
        self.links = links

    def set_shaping(
        self,
        netns: str | None,
        ifname: str,
        rate: int | None,
        delay: int | None,
        jitter: int | None,
        loss: float | None,
    ) -> None:
        index = self.links.need_index(netns, ifname)
        ipr = self.links.ns.ipr(netns)
        tbf = {}
        if rate is not None:
            # 10 ms worth of traffic per burst, as tc does for rates above ~10 Mbit/s.
            tbf = {"rate": f"{rate}bit", "burst": max(MIN_BURST, rate // 800), "latency": LATENCY}
        if delay is None and jitter is None and loss is None:
            if tbf:
                ipr.tc("replace", "tbf", index=index, handle="1:", **tbf)
            return
        netem = {"delay": delay or 0, "jitter": jitter or 0, "loss": loss or 0.0}
        ipr.tc("replace", "netem", index=index, handle="1:", **netem)
        if tbf:
            ipr.tc("replace", "tbf", index=index, handle="2:", parent="1:", **tbf)

    def clear(self, netns: str | None, ifname: str) -> None:
        from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

        index = self.links.index(netns, ifname)
        if index is None:
            return
        try:
            self.links.ns.ipr(netns).tc("del", index=index, root=True)
        except NetlinkError as exc:
            if exc.code not in (errno.ENOENT, errno.EINVAL):
                raise
