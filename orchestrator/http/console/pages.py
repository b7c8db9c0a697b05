"""The console's pages (GET): journeys overview, a journey's flow and previews, a customer, the calendar."""

from __future__ import annotations

import html
from urllib.parse import quote

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from orchestrator.errors import TemplateError
from orchestrator.http.console.auth import Session
from orchestrator.http.console.calendar_reader import CalendarReader
from orchestrator.http.console.flow import flow_svg, step_figures
from orchestrator.http.console.measured import (
    conversion_panel,
    journey_measures,
    per_day,
    reached_counts,
    sparkline,
)
from orchestrator.http.console.reads import (
    Calendar,
    calendar,
    calendar_of_records,
    customer_view,
    journey_rows,
    send_steps,
    template_context,
)
from orchestrator.http.console.web import PREVIEW_CSP, Console, redirect, refused
from orchestrator.language.journey import SendStep
from orchestrator.language.preview import render_step, sample_event, sample_profile

#: How long one reading of the send logs serves the calendar page before a new one starts.
CALENDAR_SECONDS = 300.0
#: Customer ids are at most this long (``Profile.id``); a longer one is not looked up.
MAX_ID = 128


class Pages:
    """The GET handlers; each runs its Redis reads in a thread (the store's client is blocking)."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self._calendar = CalendarReader(self._read_calendar, max_age=CALENDAR_SECONDS)

    def _read_calendar(self) -> Calendar:
        """From the measurement records when there is a reader for them, else from the send logs."""
        if self.c.figures is not None:
            sends, gate = per_day(self.c.figures(None))
            return calendar_of_records(sends, gate, self.c.settings, self.c.clock())
        return calendar(self.c.store, self.c.settings, self.c.journeys, self.c.clock())

    async def overview(self, request: Request, session: Session) -> Response:
        rows = await run_in_threadpool(journey_rows, self.c.store, self.c.journeys)
        lift = await run_in_threadpool(self.c.lift, None) if self.c.lift is not None else None
        measures = None
        if self.c.figures is not None:
            recorded = await run_in_threadpool(self.c.figures, None)
            measures = journey_measures(recorded, self.c.clock().date())
        values = template_context(rows=rows, lift=lift, measures=measures, sparkline=sparkline, title="Journeys")
        return self.c.page(request, "overview.html", session, **values)

    async def journey(self, request: Request, session: Session) -> Response:
        journey_id = str(request.path_params["journey_id"])
        journey = self.c.journeys.get(journey_id)
        if journey is None:
            stored = await run_in_threadpool(self.c.store.journey_ids)
            if journey_id in stored:
                journey = await run_in_threadpool(self.c.store.load_journey, journey_id, stored[journey_id])
        if journey is None:
            return self.c.page(
                request, "missing.html", session, status=404, what=f"journey {journey_id}", title="Not found"
            )
        stats = await run_in_threadpool(self.c.store.stats, journey.id)
        recorded = await run_in_threadpool(self.c.figures, journey.id) if self.c.figures is not None else None
        reached = reached_counts(recorded) if recorded is not None else None
        svg = await run_in_threadpool(flow_svg, journey, stats, reached)
        figures = step_figures(journey, stats, reached)
        previews = [
            (step, channel, locale)
            for step in send_steps(journey)
            for channel in step.channels
            for locale in self.c.settings.locales
        ]
        lift = await run_in_threadpool(self.c.lift, journey.id) if self.c.lift is not None else None
        conversion = conversion_panel(journey.id, recorded) if recorded is not None else None
        return self.c.page(
            request,
            "journey.html",
            session,
            **template_context(
                journey=journey,
                svg=Markup(svg),  # dot's own output; every label was escaped by flow._label
                figures=figures,
                previews=previews,
                loaded=journey.id in self.c.journeys,
                lift=lift,
                conversion=conversion,
                measured=self.c.figures is not None,
                title=journey.name,
            ),
        )

    async def preview(self, request: Request, session: Session) -> Response:
        """One send step rendered for the sample customer, shown in a sandboxed frame."""
        journey = self.c.journeys.get(str(request.path_params["journey_id"]))
        step = (
            None
            if journey is None
            else next(
                (s for s in journey.steps if s.id == request.path_params["step_id"] and isinstance(s, SendStep)), None
            )
        )
        channel, locale = str(request.path_params["channel"]), str(request.path_params["locale"])
        if journey is None or step is None or channel not in step.channels or locale not in self.c.settings.locales:
            return refused(404, "No such preview.")
        profile = sample_profile(self.c.catalogue, locale)
        try:
            content = render_step(
                self.c.renderer,
                journey,
                step,
                profile,
                event=sample_event(self.c.catalogue, journey),
                now=self.c.clock(),
                vouchers=self.c.settings.vouchers,
                endpoints=self.c.settings.endpoints,
                channel=channel,
                locale=locale,
                public_url=self.c.settings.public_url,
            )
        except TemplateError as exc:
            body = f"<p>This template does not render for the sample customer: {html.escape(str(exc))}</p>"
        else:
            head = f"<p><b>{html.escape(content.subject or content.title or '')}</b></p>"
            shown = (
                content.html
                if content.html is not None
                else f"<pre style='white-space:pre-wrap'>{html.escape(content.body)}</pre>"
            )
            locale_note = (
                f"<p><small>locale {html.escape(content.locale)}</small></p>" if content.locale != locale else ""
            )
            body = head + locale_note + shown
        headers = {
            "Content-Security-Policy": PREVIEW_CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(body, headers=headers)

    async def find_customer(self, request: Request, session: Session) -> Response:
        customer_id = request.query_params.get("id", "").strip()
        if not customer_id:
            return self.c.page(request, "customer_search.html", session, **template_context(title="Customers"))
        return redirect(request, f"/customers/{_quote(customer_id)}")

    async def customer(self, request: Request, session: Session) -> Response:
        customer_id = str(request.path_params["customer_id"])
        if len(customer_id) > MAX_ID:
            return refused(404, "No such customer.")
        view = await run_in_threadpool(
            customer_view, self.c.client, self.c.store, self.c.settings, customer_id, self.c.clock()
        )
        if not view.found:
            return self.c.page(
                request, "missing.html", session, status=404, what=f"customer {customer_id}", title="Not found"
            )
        told = await run_in_threadpool(self.c.timeline.read, customer_id) if self.c.timeline is not None else None
        return self.c.page(
            request,
            "customer.html",
            session,
            **template_context(
                view=view,
                told=told,
                timeline=list(reversed(told.moments)) if told is not None else None,
                can_end=self.c.end_run is not None,
                title=f"Customer {customer_id}",
                notice=request.query_params.get("done", ""),
            ),
        )

    async def calendar(self, request: Request, session: Session) -> Response:
        """The latest reading of every customer's send log (the store keeps no per-day record);
        the page says when it was made, or that the first one is under way."""
        found, reading = await run_in_threadpool(self._calendar.get)
        values = template_context(cal=found, reading=reading, error=self._calendar.error, title="Calendar")
        return self.c.page(request, "calendar.html", session, **values)


def _quote(value: str) -> str:
    return quote(value, safe="")
