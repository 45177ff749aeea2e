"""promote_to_live: every new or changed approved manifest becomes a live deployment."""

import json
from pathlib import Path

import dagster as dg

from alpaca_improved_pipelines.defs.promotion.manifests import read_manifests
from alpaca_improved_pipelines.resources.lake import LakeResource
from contracts import paths
from contracts.manifest import fingerprint, write_manifest


class DeployConfig(dg.Config):
    manifest_id: str
    fingerprint: str


@dg.op
def write_deployment(
    context: dg.OpExecutionContext, config: DeployConfig, lake: LakeResource
) -> None:
    """Copy one approved manifest (all its limits and costs) into the live runner's deployments
    directory (atomically), as deployment ``<strategy>``."""
    home = Path(lake.home)
    manifest = read_manifests(home)[0].get(config.manifest_id)
    if manifest is None or fingerprint(manifest) != config.fingerprint:
        raise dg.Failure(
            f"manifest {config.manifest_id} changed or vanished since the sensor saw it; "
            "the sensor will request the new version"
        )
    deployment = manifest.model_copy(update={"deployment_id": manifest.strategy})
    write_manifest(paths.deployments_dir(home) / f"{manifest.strategy}.json", deployment)
    context.log.info(f"deployed {config.manifest_id} as {manifest.strategy}")


@dg.job(description="Write an approved manifest as a live deployment.")
def deploy_job() -> None:
    write_deployment()


@dg.sensor(
    job=deploy_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING
)
def promote_to_live(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Request a deployment for every approved manifest not yet promoted (cursor + run keys)."""
    seen = json.loads(context.cursor) if context.cursor else {}
    manifests, invalid = read_manifests(Path(lake.home))
    for message in invalid:  # never deployed; the valid ones still are
        context.log.warning(f"skipping {message}")
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
