"""Use cases: what the entry points (Flask, CLI, workers, DAG tasks) call."""
