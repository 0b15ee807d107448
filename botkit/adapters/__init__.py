"""How a bot meets the world: the WSGI/Flask app, the playground, metrics and logs.
Builds on :mod:`botkit.runtime` and :mod:`botkit.core`."""
