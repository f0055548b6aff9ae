"""The Procfile's `wsgi:app`: the app of alex/wsgi.py (loads .env, builds the app, stops on a bad setting)."""

from alex.wsgi import app

__all__ = ["app"]
