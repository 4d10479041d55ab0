"""One live system, assembled in one place.

    system = build_live(LiveConfig(sources=(SourceSettings("street.mp4"),), model=ModelSettings("flow_only")))
    final_stats = system.run()        # config.run.duration seconds, or until Ctrl-C / request_stop()

* :mod:`realtime.live.config`: :class:`LiveConfig` and its parts, plain dataclasses
  (sources, model, flow, publishing, dashboard, run, spatial), checked when made.
* :mod:`realtime.live.assembly`: :func:`build_live`, which opens and wires every part
  and decides the sharing (BatchingEngine, BatchingFlow, SharedPublish, snapshot
  sinks), and :class:`LiveSystem`, which runs, stops and reports.

``python run_live.py`` (realtime/cli.py) parses its options into a LiveConfig;
bench/live.py and bench/streams.py build theirs directly.
"""
from .assembly import LiveSystem, build_live
from .config import (DashboardSettings, FlowSettings, LiveConfig, ModelSettings, PublishSettings, RunSettings,
                     SourceSettings, SpatialSettings, StartError, ThreadBudget)

__all__ = ["build_live", "LiveSystem", "LiveConfig", "SourceSettings", "ModelSettings", "FlowSettings",
           "PublishSettings", "DashboardSettings", "RunSettings", "SpatialSettings", "StartError",
           "ThreadBudget"]
