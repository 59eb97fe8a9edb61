"""Load benchmark of the live stream and the REST API, with bare baselines (never routes of the app)."""
