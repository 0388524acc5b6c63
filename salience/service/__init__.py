"""``salience serve``: a web page and a JSON API over the one inference path (the Predictor).

FastAPI on uvicorn (the optional extra ``serve``): :func:`~salience.service.app.create_app`
builds the application around a loaded :class:`~salience.predictor.Predictor`,
:func:`~salience.service.server.serve` runs it. The page is plain HTML, CSS and JavaScript in
``static/``, served by the app itself (no build step, nothing fetched from elsewhere).
"""

from salience.service.app import ServiceSettings, create_app

__all__ = ["ServiceSettings", "create_app"]
