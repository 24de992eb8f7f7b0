"""The project's own test configuration: the plugin itself comes from the pytest11 entry point."""

pytest_plugins = ["pytester"]
