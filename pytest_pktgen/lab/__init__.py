"""The lab: topologies in private namespaces, receive counters, the sniffer, the VM lab."""
