"""What runs a bot in a process: the pipeline's I/O, handler threads and deadlines,
task queues, stores and the Stream REST client. Builds on :mod:`botkit.core`."""
