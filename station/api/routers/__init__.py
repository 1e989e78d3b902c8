"""One router per resource; :func:`station.api.create_app` includes them all."""
