"""The kernel interface: the /proc/net/pktgen wire protocol, parameters, parsers, the
module and its probed features, the paper's setups."""
