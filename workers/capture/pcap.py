"""Counting the whole records of a pcap file that tcpdump is still writing."""

from __future__ import annotations

import struct
from collections.abc import Callable

PCAP_HEADER = 24
RECORD_HEADER = 16
# Magic numbers of pcap files (microsecond and nanosecond), as bytes on disk.
BYTE_ORDERS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
}


class PcapCounter:
    """Whole records of a pcap file that is still being written: how many, where the last
    one ends, and the same within a size bound (a record cut by the writer, or by a
    kill, is not counted until it is whole)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.order: str | None = None
        self.end = 0  # file offset after the last whole record (or the header)
        self.packets = 0
        self.kept_end = 0  # the same, counting only records that end within `limit`
        self.kept_packets = 0

    def feed(self, read: Callable[[int, int], bytes], size: int) -> None:
        """Read what was added since the last call; `read(length, offset)`."""
        if self.order is None:
            if size < PCAP_HEADER:
                return
            header = read(PCAP_HEADER, 0)
            self.order = BYTE_ORDERS.get(header[:4])
            if self.order is None:
                raise ValueError("not a pcap file")
            self.end = PCAP_HEADER
            self._keep()
        if size <= self.end:
            return
        data = read(size - self.end, self.end)
        view, position = memoryview(data), 0
        while position + RECORD_HEADER <= len(view):
            (captured,) = struct.unpack_from(self.order + "I", view, position + 8)
            following = position + RECORD_HEADER + captured
            if following > len(view):
                break
            position = following
            self.packets += 1
            self.end += RECORD_HEADER + captured
            self._keep()

    def _keep(self) -> None:
        if self.end <= self.limit:
            self.kept_end, self.kept_packets = self.end, self.packets


def count_packets(data: bytes) -> int:
    """The whole records of a pcap file's bytes."""
    counter = PcapCounter(len(data))
    counter.feed(lambda length, offset: data[offset : offset + length], len(data))
    return counter.packets
