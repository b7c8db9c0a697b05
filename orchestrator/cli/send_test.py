"""``loyaloop send-test JOURNEY [STEP] --to seeds.yaml``: a journey's real messages to the team's inboxes.

See :mod:`orchestrator.runtime.seed_sends` for what makes a test send safe (seed list only,
``[TEST]`` marked, outside caps and stats).  No Redis is needed; the channels are configured from
the environment exactly as a worker's are, so the providers' own checks apply.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from orchestrator import plugins
from orchestrator.errors import InputError
from orchestrator.language.journey import EventTrigger, SendStep
from orchestrator.language.loader import load_catalogue_for, load_journeys
from orchestrator.language.preview import sample_saved, sample_voucher
from orchestrator.language.render import Renderer
from orchestrator.language.seedlist import read_seed_list
from orchestrator.runtime.seed_sends import send_tests
from orchestrator.settings import load_settings


@click.command(name="send-test")
@click.argument("journey_id", metavar="JOURNEY")
@click.argument("step_id", metavar="[STEP]", required=False)
@click.option(
    "--to", "seed_file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The seed list (YAML)."
)
@click.option("--seed", "only_seed", help="Send to this one person of the seed list.")
@click.option("--channel", help="Send on this channel instead of the step's first one the seed has an address for.")
@click.option("--journeys", "journeys_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--templates", "templates_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def send_test(
    journey_id: str,
    step_id: str | None,
    seed_file: Path,
    only_seed: str | None,
    channel: str | None,
    journeys_dir: Path | None,
    templates_dir: Path | None,
) -> None:
    """Send a journey's messages (or one STEP's) for real to the people on a seed list, marked
    [TEST], outside caps and stats.

    Example: loyaloop send-test welcome --to seeds.yaml --seed ana
    """
    settings = load_settings(journeys_dir)
    if templates_dir is not None:
        settings.templates_dir = templates_dir
    seeds = read_seed_list(seed_file)
    if only_seed is not None:
        chosen = tuple(s for s in seeds.seeds if s.name == only_seed)
        if not chosen:
            names = ", ".join(s.name for s in seeds.seeds)
            raise InputError(f"no seed {only_seed!r} in {seed_file}; seeds: {names}", field="seed")
        seeds = type(seeds)(chosen)
    journeys = load_journeys(
        settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers, endpoints=settings.endpoints
    )
    journey = journeys.get(journey_id)
    if journey is None:
        raise InputError(f"no journey {journey_id!r}; journeys: {', '.join(sorted(journeys))}", field="journey")
    sends = [step for step in journey.steps if isinstance(step, SendStep)]
    if step_id is not None:
        sends = [step for step in sends if step.id == step_id]
        if not sends:
            raise InputError(f"journey {journey.id!r} has no send step {step_id!r}", field="step")
    pm = plugins.get_plugin_manager()
    channels = plugins.build_channels(settings, pm)
    if channel is not None and channel not in channels:
        raise InputError(f"no channel {channel!r}; channels: {', '.join(sorted(channels))}", field="channel")
    catalogue = load_catalogue_for(settings.journeys_dir)
    event = (
        catalogue.example_event(journey.trigger.event)
        if catalogue is not None and isinstance(journey.trigger, EventTrigger)
        else {}
    )
    pools = [step.voucher for step in sends if step.voucher]
    results = send_tests(
        journey,
        sends,
        seeds,
        channels=channels,
        renderer=Renderer(settings.templates_dir, default_locale=settings.default_locale),
        pm=pm,
        now=datetime.now(UTC),
        event=event,
        default_locale=settings.default_locale,
        voucher=sample_voucher(settings.vouchers, pools[0]) if pools else None,
        channel=channel,
        saved=sample_saved(journey, settings.endpoints),
    )
    for result in results:
        where = result.channel or "-"
        click.echo(f"{result.seed:<16} {result.step_id:<24} {where:<8} {result.outcome} {result.detail}".rstrip())
    if any(result.outcome not in ("sent",) for result in results):
        raise SystemExit(1)
