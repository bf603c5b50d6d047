"""Packet captures of running deployments: tcpdump on a node's interface, its pcap kept."""
