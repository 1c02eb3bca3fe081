"""The one place a market-data provider is built from its settings (command line and Dagster alike)."""

from __future__ import annotations

from kobe_pipelines.data.providers.base import MarketDataProvider
from kobe_pipelines.errors import ConfigError
from kobe_pipelines.settings import MarketDataSettings


def build_provider(settings: MarketDataSettings) -> MarketDataProvider:
    """The provider `settings.provider` names, configured from the same settings. The simulated
    market starts at `history_start`: the command line and the assets generate the same bars."""
    if settings.provider == "simulated":
        from kobe_pipelines.data.providers.simulated import SimConfig, SimulatedProvider

        return SimulatedProvider(SimConfig(seed=settings.sim_seed, n_symbols=settings.sim_symbols, start=settings.history_start,
                                           end=settings.sim_end or None, signal_strength=settings.sim_signal_strength))
    if settings.provider == "polygon":
        from kobe_pipelines.data.providers.polygon import PolygonProvider

        return PolygonProvider(api_key=settings.polygon_api_key, base_url=settings.polygon_base_url or None)
    if not settings.files_dir:
        raise ConfigError("KOBE_FILES_DIR", "must name a folder when KOBE_MARKET_DATA=files")
    from kobe_pipelines.data.providers.files import FilesProvider

    return FilesProvider(settings.files_dir)
