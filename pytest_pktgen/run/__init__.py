"""One pktgen run: start, sample, stop, collect; the guards that come before it and the
cleanup of what killed runs left."""
