"""promote_to_live: every new or changed approved manifest becomes a live deployment."""

import json
from pathlib import Path

import dagster as dg

from alpaca_improved_pipelines.defs.promotion.manifests import (
    deployments_dir,
    fingerprint,
    read_manifests,
    write_json_atomic,
)
from alpaca_improved_pipelines.resources.lake import LakeResource


class DeployConfig(dg.Config):
    manifest_id: str
    fingerprint: str


@dg.op
def write_deployment(
    context: dg.OpExecutionContext, config: DeployConfig, lake: LakeResource
) -> None:
    """Copy one approved manifest into the live runner's deployments directory (atomically)."""
    home = Path(lake.home)
    manifest = read_manifests(home)[config.manifest_id]
    if fingerprint(manifest) != config.fingerprint:
        raise dg.Failure(
            f"manifest {config.manifest_id} changed since the sensor saw it; "
            "the sensor will request the new version"
        )
    deployment = {k: v for k, v in manifest.items() if k != "risk_limits" or v}
    deployment["deployment_id"] = manifest["strategy"]
    write_json_atomic(deployments_dir(home) / f"{manifest['strategy']}.json", deployment)
    context.log.info(f"deployed {config.manifest_id} as {manifest['strategy']}")


@dg.job(description="Write an approved manifest as a live deployment.")
def deploy_job() -> None:
    write_deployment()


@dg.sensor(
    job=deploy_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def promote_to_live(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Request a deployment for every approved manifest not yet promoted (cursor + run keys)."""
    seen = json.loads(context.cursor) if context.cursor else {}
    manifests = read_manifests(Path(lake.home))
    requests = []
    for mid, manifest in sorted(manifests.items()):
        fp = fingerprint(manifest)
        if seen.get(mid) == fp:
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"promote:{mid}:{fp[:16]}",
                run_config={
                    "ops": {"write_deployment": {"config": {"manifest_id": mid, "fingerprint": fp}}}
                },
                tags={"alpaca_improved/manifest_id": mid},
            )
        )
        seen[mid] = fp
    if not requests:
        return dg.SkipReason("no new approved manifests")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
