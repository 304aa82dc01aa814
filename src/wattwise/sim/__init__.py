"""The digital twin: a whole site simulated in vectorized NumPy, driven by real data.

Entry points (import them from their modules; this package stays import-light):

* :class:`wattwise.sim.twin.Twin` — ``Twin(site, seed)``; ``step(dt_s)``, ``run_for(s)``,
  ``readings(t_s=None, kinds=None) -> list[Reading]`` (canonical metrics only),
  ``snapshot() -> TwinSnapshot`` (frozen arrays: server power, PSU loads, UPS charge/runtime,
  feed availability, ATS source, breaker state, rack inlet, service status…),
  ``apply(action) -> ActionResult`` (see :mod:`wattwise.sim.actions` for targets),
  ``outcome() -> Outcome``, ``mark_dirty()`` after poking state arrays directly.
* :class:`wattwise.sim.driver.TwinDriver` — the twin behind the ``Driver`` protocol.
* :mod:`wattwise.sim.scenario` — ``load_scenario(path)``/``parse_scenario(dict)``: YAML
  scenarios (site, seed, overrides, signals, timeline of injected events).
* :mod:`wattwise.sim.runner` — ``run_scenario(scenario, controller_hook, hook_every_s=1.0)``
  returns a ``RunResult`` (outcome, timeline arrays, events); ``build_twin(scenario)``.
* :class:`wattwise.sim.outcome.Outcome` — frozen per-run accounting for benchmarks.
* :mod:`wattwise.sim.plot` — ``plot_run(result, path)`` PNG.

Physics modules: :mod:`~wattwise.sim.power` (servers, PSUs), :mod:`~wattwise.sim.chain`
(feeds, generators, ATS, UPS, breakers), :mod:`~wattwise.sim.thermal`,
:mod:`~wattwise.sim.work` (workloads, services), :mod:`~wattwise.sim.processors` (event
processors); data in :mod:`~wattwise.sim.curves` and :mod:`~wattwise.sim.traces`.
"""
