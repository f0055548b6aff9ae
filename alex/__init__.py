"""alex: runs an AI coding agent on request and streams every step over Server-Sent Events.

The package root imports nothing: `alex.app.create_app` builds the Flask app, and the store, streaming and
agent packages can be imported without Flask.
"""
