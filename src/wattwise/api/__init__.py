"""wattwise.api: REST API, live events (SSE), auth and the dashboard, served by one process.

Entry point: :func:`wattwise.api.app.create_app` ``(backend, settings, tokens, *, limits,
metrics_app)``. Everything the routes show comes from an :class:`~wattwise.api.base.ApiBackend`:

* :class:`~wattwise.api.static_backend.StaticBackend` answers from the site model alone
  (nominal loads, empty forecasts/predictions/plan with a note saying why);
* the controller's adapter answers from live state. It can reuse
  :mod:`wattwise.api.views` (topology, headroom and UPS views from a ``ChainLoads``),
  :mod:`wattwise.api.backend_state` (``Subscribers`` for SSE, ``downsample``) and
  :mod:`wattwise.api.whatif`, and must pass ``tests/api/test_backend_contract.py``.

Routes (all under ``/api/v1``; reads need a viewer token, mutations an operator, tokens an admin):

=======  ====================================  ==============================================
GET      /me /status /site /headroom /ups      who am I, controller state, topology, headroom
GET      /devices /devices/{id}/history        devices + latest readings, down-sampled history
GET      /forecasts /predictions /plan         intervals, at-risk devices, decisions + actions
GET      /journal /events                      journal (newest first), live updates (SSE)
POST     /mode /actions/{cid}/approve|deny     arm/disarm, approve/deny a pending action
POST     /devices/{id}/maintenance /what-if    maintenance flag, hypothetical loss (read-only)
GET/POST /tokens, DELETE /tokens/{name}        token management (admin)
=======  ====================================  ==============================================

Also: ``/openapi.json``, ``/`` (dashboard), ``/static/*``, ``/healthz``, ``/metrics`` when a
Prometheus app is given. Errors are ``application/problem+json``.
"""
