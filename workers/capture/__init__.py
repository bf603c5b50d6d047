"""Packet captures inside nodes (docs/messages.md, Captures): tcpdump on one interface of
a node, bounded in size and time, its file sent to the control plane through Redis when
it ends, so the host needs no inbound port.

tcpdump is the host's (`/usr/bin/tcpdump`): it joins only the node's network namespace
and the node's cgroup, so it needs nothing from the node's root tree, and tearing the
lab down (or the sweep) kills it with the node's other processes. Its file lives on the
deployment's tmpfs (`<data>/run/<token>/captures/`), which teardown unmounts. No user
text reaches a shell: the interface must be one the plan gives the node, the filter is
one argument after `--`, compiled first with `tcpdump -d` so a bad one is refused with
its message.

While it runs, a watcher thread counts the whole pcap records written, sends
`labmgr.control.capture_progress` about every second, and stops tcpdump when a bound is
reached or a stop is asked for. At the end it keeps the whole records within the size
bound, pushes them in chunks on `labmgr:capture:<id>:pcap` and sends
`labmgr.control.capture_finished` with the number of chunks.

The parts: `pcap` counts the whole records of a growing pcap file; `watcher` is one
running tcpdump and the thread that bounds it, reports it and sends its file; `registry`
checks a request, starts and stops the agent's captures and reaps what a previous run
left; `tasks` binds the `labmgr.agent.capture_*` jobs to Celery.
"""
