"""The deployment manifest: what the approval writes and the live runner trades, typed once.

The promotion step (``approved_manifest`` and the ``promote_to_live`` sensor) builds a
:class:`DeploymentManifest` and writes it with :func:`write_manifest`; the runner reads it with
:func:`read_manifest`. A manifest names the strategy and its interface version, its params and
capital, every risk limit (a daily-loss limit always), the trading costs of the backtest that
selected it (the live reference backtest reuses them), the code and data versions, the MLflow
run and the approval record. Unknown keys are refused, so a typo never passes silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.errors import ContractError
from contracts.limits import GreekLimits, RiskLimits
from strategies.backtest.config import FeeSchedule, OptionsBacktestConfig

_FEES = FeeSchedule()
_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SignalCosts(BaseModel):
    """Costs of an equity signal sweep (vectorbt ``from_signals``), as the sweep used them.

    Attributes:
        fees: Fee per fill as a fraction of its notional.
        slippage: Fill price worse than the close by this fraction.
    """

    model_config = _FROZEN

    kind: Literal["signal"] = "signal"
    fees: float = Field(ge=0, lt=1)
    slippage: float = Field(ge=0, lt=1)


class OptionFees(BaseModel):
    """:class:`strategies.backtest.config.FeeSchedule` as data (same fields and defaults)."""

    model_config = _FROZEN

    option_commission: float = Field(default=_FEES.option_commission, ge=0)
    option_orf: float = Field(default=_FEES.option_orf, ge=0)
    option_taf: float = Field(default=_FEES.option_taf, ge=0)
    stock_commission: float = Field(default=_FEES.stock_commission, ge=0)
    stock_taf: float = Field(default=_FEES.stock_taf, ge=0)
    stock_taf_max: float = Field(default=_FEES.stock_taf_max, ge=0)
    sec_rate: float = Field(default=_FEES.sec_rate, ge=0)
    assignment_fee: float = Field(default=_FEES.assignment_fee, ge=0)

    def schedule(self) -> FeeSchedule:
        """The engine's fee schedule."""
        return FeeSchedule(**self.model_dump())


class OptionsCosts(BaseModel):
    """Costs of an options backtest (the options engine), as the backtest used them.

    Attributes:
        fill_fraction: Fills at mid +/- this fraction of the spread.
        stock_slippage: Stock fills (assignments aside) worse by this fraction.
        fees: The per-contract and regulatory fee schedule.
    """

    model_config = _FROZEN

    kind: Literal["options"] = "options"
    fill_fraction: float = Field(default=0.25, ge=0, le=1)
    stock_slippage: float = Field(default=0.0, ge=0, lt=1)
    fees: OptionFees = OptionFees()

    def backtest_config(self, **settings: Any) -> OptionsBacktestConfig:
        """An engine config with these costs plus ``settings`` (initial_cash, units, ...)."""
        return OptionsBacktestConfig(
            fill_fraction=self.fill_fraction,
            stock_slippage=self.stock_slippage,
            fees=self.fees.schedule(),
            **settings,
        )


Costs = Annotated[SignalCosts | OptionsCosts, Field(discriminator="kind")]


class Approval(BaseModel):
    """Who approved the deployment, when, why, on which gates, and how its limits were set.

    Attributes:
        approver: Who approved.
        reason: Why (free text; demo approvals say so).
        at: When (timezone-aware).
        demo: A demo approval (``make demo``), not a human decision.
        dagster_run_id: The approval's Dagster run.
        gates_passed: Whether the candidate passed every gate.
        gate_notes: The gates it failed, if any (``allow_failed_gates``).
        reference_symbol: The underlying whose close priced the share-unit limits.
        reference_price: That close ($/share).
        reference_session: The session of that close.
        limits_set: The limits the approver set; every other one was derived from the capital
            (:func:`contracts.limits.derived_risk_limits`).
    """

    model_config = _FROZEN

    approver: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    at: AwareDatetime
    demo: bool = False
    dagster_run_id: str = ""
    gates_passed: bool
    gate_notes: str = ""
    reference_symbol: str = Field(min_length=1)
    reference_price: float = Field(gt=0)
    reference_session: dt.date
    limits_set: tuple[str, ...] = ()


def _missing_keys(value: Any, model: type[BaseModel], prefix: str = "") -> list[str]:
    if not isinstance(value, Mapping):
        return []
    return [f"{prefix}{k}" for k in model.model_fields if k not in value]


class DeploymentManifest(BaseModel):
    """One approved deployment.

    Attributes:
        manifest_id: Id of the approved manifest (traceability to MLflow and the approval).
        strategy: Registered strategy family name.
        interface_version: Must equal the family's ``interface_version``.
        params: Strategy config (JSON lists become tuples).
        capital: Capital allotted to this deployment (its book's starting cash).
        risk_limits: Every limit, explicitly (a file must list them all); ``max_daily_loss`` is
            required: every deployment has a daily-loss limit.
        costs: The costs of the backtest that selected the strategy (:class:`SignalCosts` or
            :class:`OptionsCosts`, by ``kind``); the live reference backtest reuses them.
        enabled: False parks the deployment (no new decisions).
        deployment_id: Defaults to the file name without ``.json``.
        git_sha: The code version the research ran on.
        data_versions: Lake table -> content hash of the data the research ran on.
        mlflow_run_id: The MLflow run of the selected variant.
        approval: The approval record (None for a deployment written by hand, e.g. in tests).
    """

    model_config = _FROZEN

    manifest_id: str = Field(min_length=1)
    strategy: str = Field(min_length=1)
    interface_version: int = Field(ge=1)
    params: dict[str, Any] = Field(default_factory=dict)
    capital: float = Field(gt=0)
    risk_limits: RiskLimits
    costs: Costs
    enabled: bool = True
    deployment_id: str | None = None
    git_sha: str = ""
    data_versions: dict[str, str] = Field(default_factory=dict)
    mlflow_run_id: str = ""
    approval: Approval | None = None

    @field_validator("risk_limits", mode="before")
    @classmethod
    def _every_limit(cls, value: Any) -> Any:
        greeks = value.get("greeks") if isinstance(value, Mapping) else None
        missing = _missing_keys(value, RiskLimits) + _missing_keys(greeks, GreekLimits, "greeks.")
        if missing:
            raise ValueError(
                f"risk_limits must list every limit; missing {missing} (null means no cap; "
                "contracts.limits.derived_risk_limits gives the documented defaults)"
            )
        return value

    @model_validator(mode="after")
    def _daily_loss_and_costs(self) -> DeploymentManifest:
        if self.risk_limits.max_daily_loss is None:
            raise ValueError(
                "risk_limits.max_daily_loss is null; every deployment needs a daily-loss limit "
                "($ lost since the session's start that switches it to REDUCING)"
            )
        options = _is_options_family(self.strategy)
        if options is not None and options != isinstance(self.costs, OptionsCosts):
            want = "options" if options else "signal"
            raise ValueError(
                f"costs.kind is {self.costs.kind!r} but {self.strategy} is backtested with "
                f"{want!r} costs"
            )
        return self


def _is_options_family(strategy: str) -> bool | None:
    """Whether ``strategy`` is an options family; None when it is not registered."""
    from strategies.base import get_strategy_class
    from strategies.options.common import OptionStrategy

    try:
        return issubclass(get_strategy_class(strategy), OptionStrategy)
    except KeyError:
        return None


def parse_manifest(data: bytes | str | Mapping[str, Any], name: str) -> DeploymentManifest:
    """Validate manifest JSON (or its decoded mapping); ContractError naming ``name``."""
    try:
        if isinstance(data, Mapping):
            return DeploymentManifest.model_validate(data)
        return DeploymentManifest.model_validate_json(data)
    except ValidationError as exc:
        raise ContractError(f"{name}: invalid deployment manifest: {exc}") from None


def read_manifest(path: Path) -> DeploymentManifest:
    """The manifest in ``path`` (ContractError naming the file when it does not validate)."""
    return parse_manifest(path.read_bytes(), path.name)


def manifest_json(manifest: DeploymentManifest) -> str:
    """The canonical JSON of a manifest (sorted keys): what is written and fingerprinted."""
    return json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def fingerprint(manifest: DeploymentManifest) -> str:
    """sha256 of the manifest's canonical JSON."""
    return hashlib.sha256(manifest_json(manifest).encode()).hexdigest()


def write_manifest(path: Path, manifest: DeploymentManifest, fsync: bool = True) -> Path:
    """Write ``manifest`` to ``path`` atomically (temp file in the same directory, fsync,
    rename), so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as f:
        f.write(manifest_json(manifest))
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return path
