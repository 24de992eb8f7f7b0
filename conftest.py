"""The project's own test configuration: the plugin comes from the pytest11 entry point."""
