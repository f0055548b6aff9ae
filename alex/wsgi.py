"""WSGI entry point for gunicorn (`alex.wsgi:app`; the top-level wsgi.py re-exports it for the Procfile's
`wsgi:app`): loads .env, builds the app, stops on a bad setting."""

import logging
import sys

from alex.app import create_app
from alex.config import ConfigError, load_dotenv_file

load_dotenv_file()
try:
    app = create_app()
except ConfigError as error:
    logging.getLogger("alex").critical("configuration error: %s", error)
    print(f"alex: configuration error: {error}", file=sys.stderr, flush=True)
    sys.exit(4)  # gunicorn's APP_LOAD_ERROR: the arbiter stops instead of restarting the worker
