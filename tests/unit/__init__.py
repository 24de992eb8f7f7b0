# A package: its modules share basenames with tests/integration's (test_guard, test_latency,
# test_losses, test_search), and `pytest tests` collects both (issue 32, item 17).
