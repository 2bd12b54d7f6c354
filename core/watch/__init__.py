"""`llmtop watch`'s pieces below the command: the state of a watched server, its poller, the proxy
that measures each answer, and the Prometheus endpoint."""
