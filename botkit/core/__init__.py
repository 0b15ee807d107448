"""botkit's core: registration, contexts, replies, payload schemas and signing.

Pure code: no I/O, no threads. The runtime and the adapters build on it.
"""
