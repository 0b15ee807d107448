"""Example bots: /gif, /ticket (and more), served together by ``wsgi.py``."""
