"""Impairments of a link's egress: tbf for a rate, netem for delay, jitter, loss,
duplication, corruption and reordering (with tbf under it when both are asked).
Replacing the root qdisc makes it idempotent."""

from __future__ import annotations

import errno

from labplan import ops
from workers.kernel.links import Links

MIN_BURST = 16 * 1024  # bytes; at least a few full frames, like tc's advice for tbf
LATENCY = "50ms"  # how long a packet may wait in tbf before being dropped


class Qdiscs:
    def __init__(self, links: Links) -> None:
        self.links = links

    def set_shaping(self, op: ops.SetShaping) -> None:
        index = self.links.need_index(op.netns, op.ifname)
        ipr = self.links.ns.ipr(op.netns)
        tbf = {}
        if op.rate is not None:
            # 10 ms worth of traffic per burst, as tc does for rates above ~10 Mbit/s.
            tbf = {
                "rate": f"{op.rate}bit",
                "burst": max(MIN_BURST, op.rate // 800),
                "latency": LATENCY,
            }
        given = {
            "delay": op.delay,
            "jitter": op.jitter,
            "loss": op.loss,
            "duplicate": op.duplicate,
            "corrupt": op.corrupt,
            "reorder": op.reorder,
        }
        if all(value is None for value in given.values()):
            if tbf:
                ipr.tc("replace", "tbf", index=index, handle="1:", **tbf)
            return
        netem: dict[str, float] = {
            "delay": op.delay or 0,
            "jitter": op.jitter or 0,
            "loss": op.loss or 0.0,
            "duplicate": op.duplicate or 0.0,
        }
        if op.corrupt is not None:
            netem["prob_corrupt"] = op.corrupt
        if op.reorder is not None:
            # As tc does: reordering sends every other packet at once (gap 1).
            netem.update(prob_reorder=op.reorder, gap=1)
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
