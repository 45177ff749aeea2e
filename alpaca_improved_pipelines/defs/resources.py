"""Resources bound in one place, from the environment (``ALPACA_IMPROVED_*``)."""


import dagster as dg

from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.resources.sources import MarketDataSource, SyntheticSource
from alpaca_improved_pipelines.resources.universe import UniverseResource
from alpaca_improved_pipelines.settings import Settings, load_settings


def build_source(settings: Settings) -> MarketDataSource:
    """The market-data source named by ``ALPACA_IMPROVED_SOURCE``."""
    if settings.source == "synthetic":
        return SyntheticSource(seed=settings.seed)
    from alpaca_improved_pipelines.errors import ConfigError

    raise ConfigError(
        f"ALPACA_IMPROVED_SOURCE={settings.source!r} is not available in this build yet; "
        "use synthetic"
    )


def build_resources(settings: Settings) -> dict[str, object]:
    """Resource instances for ``settings`` (tests call this with a temp data root)."""
    return {
        "lake": LakeResource(home=str(settings.home.resolve()), fsync=settings.fsync),
        "source": build_source(settings),
        "universe": UniverseResource(symbols=list(settings.symbols)),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(load_settings()))
