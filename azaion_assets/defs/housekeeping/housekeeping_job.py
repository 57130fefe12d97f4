"""``housekeeping_job``: what the pipeline derives, kept within the ``KEEP_*`` policy, daily.

One op plans from the data tree and the instance (the champions a rollback needs, what was
released in the models window) and carries the plan out under the pipeline's own locks
(``lib.housekeeping``). Its output metadata says what it removed, or with
``HOUSEKEEPING_DRY_RUN`` would remove, by kind with bytes, and what it kept and why. Each
``dataset`` or ``model`` partition it removes gets an observation saying so, when and by which
run, so the asset's page tells a pruned partition from a live one; materialising a pruned
``dataset`` again forms it again.
"""

from collections import Counter
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetObservation,
    DefaultScheduleStatus,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    in_process_executor,
    job,
    op,
)

from azaion_assets.defs.instance_facts import (
    DATASET,
    MODEL,
    champion_history,
    released_since,
)
from azaion_assets.defs.resources import AzaionSettingsResource
from azaion_assets.lib.champion.files import UNKNOWN, held_partition
from azaion_assets.lib.config.fields import Scope
from azaion_assets.lib.housekeeping import retention
from azaion_assets.lib.housekeeping.pruning import carry_out
from azaion_assets.lib.housekeeping.retention import Decision, Facts, plan, retention_of

HOUSEKEEPING_JOB = "housekeeping_job"
CRON = "30 3 * * *"  # 03:30 UTC: after the day's last annotations, before the morning's
_OBSERVED = {retention.DATASET: DATASET, retention.MODEL: MODEL}


@op(description="Remove what the KEEP_* policy no longer keeps; report it, by kind, with bytes")
def housekeeping(context: OpExecutionContext, azaion_settings: AzaionSettingsResource):
    settings = azaion_settings.load(Scope.HOUSEKEEPING)
    tree = azaion_settings.tree()
    keep = retention_of(settings)
    today = datetime.now(UTC).date()
    window = datetime.combine(today - timedelta(days=keep.models_days), datetime.min.time(), UTC)
    # The pair on disk names the live champion even where the instance does not (a promotion
    # by hand outside Dagster, an instance started afresh); the instance names those before it.
    held = held_partition(tree.champion)
    history = champion_history(context.instance, keep.champions)
    live = (held,) if held not in (None, UNKNOWN) else ()
    facts = Facts(
        champions=tuple(dict.fromkeys(live + history)),
        released=released_since(context.instance, window.timestamp()),
    )
    decisions = plan(tree, today, keep, facts)
    dry = settings.housekeeping_dry_run
    outcome = carry_out(tree, decisions, dry_run=dry)
    verb = "would remove" if dry else "removed"
    for kind, (count, size) in sorted(outcome.removed.items()):
        context.log.info(f"{verb} {count} {kind} ({size / 1e6:.1f} MB)")
    if not dry:
        for decision in decisions:
            if decision.remove and decision.kind in _OBSERVED and not decision.path.exists():
                context.log_event(_pruned(decision, context.run_id))
    yield Output(None, metadata=_report(decisions, outcome.removed, outcome.skipped, dry))


def _pruned(decision: Decision, run_id: str) -> AssetObservation:
    return AssetObservation(
        asset_key=_OBSERVED[decision.kind],
        partition=decision.partition,
        metadata={
            "pruned": f"{decision.path} removed by housekeeping: {decision.reason}",
            "pruned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "pruned_by_run": run_id,
        },
    )


def _report(decisions: list[Decision], removed: dict, skipped: list[str], dry: bool) -> dict:
    kept = Counter(f"{d.kind}: {d.reason}" for d in decisions if not d.remove)
    return {
        "dry_run": dry,
        "removed" if not dry else "would_remove": MetadataValue.json(
            {kind: {"count": c, "bytes": b} for kind, (c, b) in sorted(removed.items())}
        ),
        "bytes_freed" if not dry else "bytes_to_free": sum(b for _, b in removed.values()),
        "kept": MetadataValue.json(dict(sorted(kept.items()))),
        "removals": MetadataValue.json(
            [f"{d.kind}: {d.path.name} ({d.reason})" for d in decisions if d.remove]
        ),
        "left_for_a_later_run": MetadataValue.json(skipped),
    }


@job(
    name=HOUSEKEEPING_JOB,
    executor_def=in_process_executor,
    tags={"azaion/stage": "housekeeping"},
    description="Keep what the pipeline derives within KEEP_*: datasets, models, checkpoints, "
    "release parts, quarantine (HOUSEKEEPING_DRY_RUN to only report)",
)
def housekeeping_job():
    housekeeping()


housekeeping_schedule = ScheduleDefinition(
    name="housekeeping_schedule",
    job=housekeeping_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Runs housekeeping_job daily at 03:30 UTC",
)
