"""The strategy interface, declared parameter spaces and the strategy registry.

A strategy is a class with a frozen, validated config and a pure ``decide(snapshot, book)``; the
same object runs in the options backtest engine and in the live runner. Equity signal strategies
additionally expose a vectorized ``signals(close)`` used by vectorbt and the compiled fast path.
"""

from __future__ import annotations

import dataclasses
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from strategies.models import Book, MarketSnapshot, OrderIntent, Timeframe


class StrategyError(RuntimeError):
    """A strategy raised or returned something invalid; the caller records a failed trial.

    Attributes:
        strategy: Strategy name.
        session: Session of the failing decision (None outside a decision).
        cause: The original exception, if any.
    """

    def __init__(self, strategy: str, session: Any, message: str, cause: BaseException | None):
        super().__init__(f"strategy {strategy!r} failed on {session}: {message}")
        self.strategy = strategy
        self.session = session
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter's search space: explicit grid ``values`` or a ``[low, high]`` range.

    Attributes:
        name: Config field name.
        values: Grid values (used by grid search and sampled uniformly by random search).
        low: Range lower bound (random search; grid when ``step`` is given).
        high: Range upper bound, inclusive.
        step: Grid step over the range.
        integer: Draw integers from the range.
    """

    name: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    integer: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        has_range = self.low is not None and self.high is not None
        if not self.values and not has_range:
            raise ValueError(f"param {self.name!r} needs values or low/high")
        if has_range and self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"param {self.name!r}: low must be <= high")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"param {self.name!r}: step must be > 0")

    def grid(self) -> tuple[Any, ...]:
        """Grid values: ``values`` or the stepped range."""
        if self.values:
            return self.values
        if self.step is None:
            raise ValueError(f"param {self.name!r} is a continuous range; give step for a grid")
        count = int(np.floor((self.high - self.low) / self.step + 1e-9)) + 1  # type: ignore[operator]
        points = [self.low + k * self.step for k in range(count)]  # type: ignore[operator]
        return tuple(int(round(p)) for p in points) if self.integer else tuple(points)

    def draw(self, rng: np.random.Generator) -> Any:
        """One random value (uniform over values, or over the range)."""
        if self.values:
            return self.values[int(rng.integers(len(self.values)))]
        if self.integer:
            return int(rng.integers(int(self.low), int(self.high) + 1))  # type: ignore[arg-type]
        return float(rng.uniform(self.low, self.high))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ParamSpace:
    """A strategy's declared parameter space with a validity predicate.

    ``validate(params)`` builds the config (defaults for unnamed fields) and returns it, raising the
    config's ValueError for an invalid combination (for example ``fast >= slow``).
    """

    params: tuple[Param, ...]
    config_cls: type[Any]
    predicate: Callable[[Mapping[str, Any]], bool] | None = None

    def validate(self, params: Mapping[str, Any]) -> Any:
        """The config for ``params``; ValueError naming the problem when invalid."""
        config = self.config_cls(**params)
        if self.predicate is not None and not self.predicate(params):
            raise ValueError(f"parameters {dict(params)} rejected by the space's predicate")
        return config

    def invalid_reason(self, params: Mapping[str, Any]) -> str | None:
        """None when valid, else the validation message (to record a skipped point)."""
        try:
            self.validate(params)
        except (ValueError, TypeError) as exc:
            return str(exc)
        return None

    def is_valid(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` form a valid config."""
        return self.invalid_reason(params) is None

    def grid(self) -> Iterator[dict[str, Any]]:
        """All valid points of the cartesian grid, in declaration order."""
        names = [p.name for p in self.params]
        for combo in itertools.product(*(p.grid() for p in self.params)):
            point = dict(zip(names, combo, strict=True))
            if self.is_valid(point):
                yield point

    def sample(self, n: int, seed: int, max_tries: int | None = None) -> list[dict[str, Any]]:
        """``n`` valid random points drawn with an explicit ``seed`` (deterministic)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        out: list[dict[str, Any]] = []
        for _ in range(max_tries or 100 * max(n, 1)):
            if len(out) == n:
                break
            point = {p.name: p.draw(rng) for p in self.params}
            if self.is_valid(point):
                out.append(point)
        if len(out) < n:
            raise ValueError(f"could only draw {len(out)} valid points of {n}; space too narrow")
        return out


class Strategy(ABC):
    """Base class of every strategy: a name, an interface version, a config and ``decide()``.

    Subclasses set ``name`` and ``config_cls`` (a frozen dataclass validating itself in
    ``__post_init__``) and implement :meth:`param_space` and :meth:`decide`. ``decide`` must be
    pure: its output depends only on its arguments and the config (no I/O, clock or randomness).
    """

    name: ClassVar[str]
    interface_version: ClassVar[int] = 1
    config_cls: ClassVar[type[Any]]
    # The bars it decides on: "1d" decides once per session on the daily close; "1m" decides on
    # every minute bar's close and reads ``snapshot.intraday`` (the session's closed minutes).
    timeframe: ClassVar[Timeframe] = "1d"

    __slots__ = ("_config",)

    def __init__(self, config: Any = None) -> None:
        config = self.config_cls() if config is None else config
        if not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name} needs a {self.config_cls.__name__}, got {type(config)}")
        self._config = config

    @property
    def config(self) -> Any:
        """The frozen, validated config."""
        return self._config

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Strategy:
        """Build the strategy from a parameter mapping (ValueError when invalid)."""
        return cls(cls.config_cls(**params))

    def params(self) -> dict[str, Any]:
        """The config as a plain dict (for manifests and experiment tracking)."""
        return dataclasses.asdict(self._config)

    @classmethod
    @abstractmethod
    def param_space(cls) -> ParamSpace:
        """The declared search space of this strategy family."""

    @classmethod
    def check_declaration(cls) -> None:
        """TypeError unless the class is a complete family declaration (run on registration, so
        a half-declared family fails at import, not in a sweep): an identifier ``name``, a
        dataclass config whose defaults are valid, and a parameter space over its fields."""
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"{cls.__name__} must set name to an identifier, got {name!r}")
        config = cls.config_cls()
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"{name}: config_cls {cls.config_cls.__name__} must be a dataclass")
        fields = {f.name for f in dataclasses.fields(config)}
        unknown = [p.name for p in cls.param_space().params if p.name not in fields]
        if unknown:
            raise TypeError(
                f"{name}: param_space names {unknown}, not config fields {sorted(fields)}"
            )

    @abstractmethod
    def decide(self, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
        """Intents for this decision time, from the snapshot and book only."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config!r})"


def safe_decide(strategy: Strategy, snapshot: MarketSnapshot, book: Book) -> list[OrderIntent]:
    """Call ``decide`` and turn any exception or malformed result into :class:`StrategyError`."""
    try:
        intents = strategy.decide(snapshot, book)
    except Exception as exc:  # a strategy bug must become a recordable failed trial
        raise StrategyError(
            strategy.name, snapshot.session, f"{type(exc).__name__}: {exc}", exc
        ) from exc
    if not isinstance(intents, Sequence) or isinstance(intents, str):
        raise StrategyError(strategy.name, snapshot.session, "decide() must return a list", None)
    bad = [i for i in intents if not isinstance(i, OrderIntent)]
    if bad:
        raise StrategyError(strategy.name, snapshot.session, f"not OrderIntents: {bad[:3]}", None)
    return list(intents)


_REGISTRY: dict[str, type[Strategy]] = {}
_S = TypeVar("_S", bound=type[Strategy])


def register_strategy(cls: _S) -> _S:
    """Class decorator adding a strategy family to the registry under ``cls.name``.

    Registration is the family's one declaration: the research pipeline generates a sweep asset,
    walk-forward and candidate gating for every registered signal family (see
    :func:`strategies.equity.signal.signal_families`). The class is checked first
    (:meth:`Strategy.check_declaration`).
    """
    cls.check_declaration()
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"strategy name {cls.name!r} is already registered by {existing}")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_registry() -> dict[str, type[Strategy]]:
    """Family name -> class for every built-in (and registered) strategy."""
    import strategies.equity  # noqa: F401  (registers the built-ins)
    import strategies.ml  # noqa: F401
    import strategies.options  # noqa: F401

    return dict(_REGISTRY)


def get_strategy_class(name: str) -> type[Strategy]:
    """The registered class of family ``name`` (KeyError listing the known names)."""
    registry = strategy_registry()
    if name not in registry:
        raise KeyError(f"unknown strategy {name!r}; known: {sorted(registry)}")
    return registry[name]


def create_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """Instantiate family ``name`` with ``params`` (ValueError when they are invalid)."""
    return get_strategy_class(name).from_params(params or {})
