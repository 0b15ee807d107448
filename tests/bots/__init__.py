"""Small bots that tests run in other processes (huey consumers, gunicorn)."""
