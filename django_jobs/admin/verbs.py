"""The operator's verbs on jobs (retry, stop, dead-letter) in the admin: who may use each, and the
pages that confirm it for one job, a selection or every job a filter matches. What each verb says
is in django_jobs/verbs.py, shared with ``manage.py jobs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ORDER_VAR, PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from .. import audit
from ..models import Job, Transitioned
from ..verbs import NOTE_MAX_LENGTH, VERBS, Verb, preview


class NoteForm(forms.Form):
    """The note a dead-letter asks for, kept in each job's history."""

    note = forms.CharField(
        required=False,
        max_length=NOTE_MAX_LENGTH,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why, for whoever finds these jobs later: it goes into each job's history.",
    )


class VerbAdmin(admin.ModelAdmin):
    """A job admin whose rows change only through ``verbs``: buttons on a job's page, changelist
    actions and links for every job the list's filters match, each confirmed first."""

    #: The slugs of the VERBS this admin offers.
    verbs: tuple[str, ...] = ()

    # -- permissions: one custom permission per verb ------------------------------------------

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["retry"].permission)

    def has_stop_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["stop"].permission)

    def has_dead_letter_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["dead-letter"].permission)

    def may(self, request: HttpRequest, verb: Verb) -> bool:
        return bool(getattr(self, f"has_{verb.name}_permission")(request))

    # -- where the verbs are offered: the list's links and actions, a job's buttons -----------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            # Django would show the list again as if nothing was asked; refuse it plainly.
            raise PermissionDenied
        query = self._filter_query(request)
        links = [
            {"verb": verb, "url": self._url("bulk", verb.slug, query=query)}
            for slug in self.verbs
            if self.may(request, verb := VERBS[slug])
        ]
        return super().changelist_view(request, {"bulk_links": links, **(extra_context or {})})

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        job = self.get_object(request, unquote(object_id))
        buttons = []
        if job is not None:
            for verb in VERBS.values():
                if (
                    verb.slug not in self.verbs
                    or not self.may(request, verb)
                    or job.status not in verb.allowed
                ):
                    continue
                if verb.name == "stop" and job.stop_requested_at:
                    continue
                buttons.append(
                    {
                        "verb": verb,
                        "url": self._url("one", job.pk, verb.slug),
                        "post": not verb.takes_note,
                    }
                )
        return super().change_view(
            request, object_id, form_url, {"job_buttons": buttons, **(extra_context or {})}
        )

    # -- the verbs' views -------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("all/<slug:slug>/", wrap(self.bulk_view), name="%s_%s_bulk" % info),
            path("<path:object_id>/do/<slug:slug>/", wrap(self.one_view), name="%s_%s_one" % info),
            *super().get_urls(),
        ]

    def _url(self, view: str, *args: Any, query: str = "") -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args)
        return f"{url}?{query}" if query else url

    def _tell(self, request: HttpRequest, result: Transitioned, message: str) -> None:
        self.message_user(
            request, message, messages.SUCCESS if result.done_count else messages.WARNING
        )

    def _verb(self, request: HttpRequest, slug: str) -> Verb:
        verb = VERBS.get(slug)
        if verb is None or slug not in self.verbs:
            raise Http404(f"No operator action called {slug!r}.")
        if not (self.has_view_permission(request) and self.may(request, verb)):
            raise PermissionDenied
        return verb

    @staticmethod
    def _filter_query(request: HttpRequest) -> str:
        """The list's filters and search from the query string, without its page and sort."""
        query = request.GET.copy()
        for key in (PAGE_VAR, ORDER_VAR, ERROR_FLAG):
            query.pop(key, None)
        return query.urlencode()

    def _page_after(self, request: HttpRequest, job: Job) -> str:
        """Where a verb on one job leads back to: the job's page, if this user may see jobs."""
        if self.admin_site.get_model_admin(Job).has_view_permission(request):
            return reverse("admin:django_jobs_job_change", args=[job.pk])
        # Only dead letters: the job may have left them (a retry), so back to the list.
        return self._url("changelist")

    def one_view(self, request: HttpRequest, object_id: str, slug: str) -> HttpResponse:
        """One job, from the buttons on its page: POST acts; a dead-letter asks for a note first."""
        verb = self._verb(request, slug)
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404(f"No job with id {object_id!r}.")
        back = self._page_after(request, job)
        form = NoteForm(request.POST or None) if verb.takes_note else None
        if request.method != "POST":
            if form is None:
                return HttpResponseNotAllowed(["POST"])
            return self._confirm(request, verb, Job.objects.filter(pk=job.pk), back=back, form=form)
        if form is not None and not form.is_valid():
            return self._confirm(request, verb, Job.objects.filter(pk=job.pk), back=back, form=form)
        result = self._perform(request, verb, Job.objects.filter(pk=job.pk), form)
        self._tell(request, result, verb.report_one(job, result))
        return HttpResponseRedirect(back)

    def bulk_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Every job matching the list's filters and search (the query string), however many:
        GET counts them and asks; POST acts, in batches."""
        verb = self._verb(request, slug)
        query = self._filter_query(request)
        back = self._url("changelist", query=query)
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            self.message_user(
                request, "Those filters don't apply to jobs; nothing was changed.", messages.ERROR
            )
            return HttpResponseRedirect(self._url("changelist"))
        form = NoteForm(request.POST or None) if verb.takes_note else None
        if request.method == "POST" and (form is None or form.is_valid()):
            result = self._perform(request, verb, queryset, form)
            self._tell(request, result, verb.report(result))
            return HttpResponseRedirect(back)
        filters = [(key, ", ".join(request.GET.getlist(key))) for key in request.GET]
        return self._confirm(
            request,
            verb,
            queryset,
            back=back,
            form=form,
            filters=filters or [("(none)", "every job")],
        )

    def _act_on_selection(
        self, request: HttpRequest, queryset: QuerySet[Any], verb: Verb
    ) -> HttpResponse | None:
        """A changelist action: confirm first, with the counts; act when confirmed."""
        if request.POST.get("select_across") == "1":
            # "Select all N": the jobs matching the filter, which the bulk view handles in batches.
            query = self._filter_query(request)
            return HttpResponseRedirect(self._url("bulk", verb.slug, query=query))
        form = NoteForm(request.POST) if verb.takes_note else None
        if request.POST.get("confirm") == "yes" and (form is None or form.is_valid()):
            result = self._perform(request, verb, queryset, form)
            self._tell(request, result, verb.report(result))
            return None
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        hidden = [("action", request.POST["action"]), ("confirm", "yes")]
        hidden += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in selected]
        return self._confirm(
            request,
            verb,
            queryset,
            back=request.get_full_path(),
            form=NoteForm() if verb.takes_note else None,
            hidden=hidden,
        )

    def _perform(
        self, request: HttpRequest, verb: Verb, queryset: QuerySet[Any], form: NoteForm | None
    ) -> Transitioned:
        """Apply ``verb``; each job it changed gets a LogEntry, and its history names the user."""
        username = request.user.get_username()
        note = form.cleaned_data["note"] if form is not None else ""
        if verb.name == "stop":
            # What a waiting job's last_error will say: who stopped it.
            arguments = [f"stopped by {username} in the admin"]
        else:
            arguments = [note] if form is not None else []
        result: Transitioned = getattr(queryset, verb.name)(*arguments, by=username)
        audit.log_jobs(request.user, result, verb.audit_message("the admin", note))
        return result

    def _confirm(
        self,
        request: HttpRequest,
        verb: Verb,
        queryset: QuerySet[Any],
        *,
        back: str,
        form: NoteForm | None = None,
        hidden: Sequence[tuple[str, Any]] = (),
        filters: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        """The page that says what a verb would do to these jobs, by name and status, and asks."""
        shown = preview(verb, queryset)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.label}: are you sure?",
            "verb": verb,
            "rows": shown.rows,
            "total": shown.total,
            "will": shown.will,
            "summary": shown.summary,
            "form": form,
            "hidden": hidden,
            "filters": filters,
            "back": back,
        }
        return TemplateResponse(request, "admin/django_jobs/confirm_jobs.html", context)

    @admin.action(description="Retry the selected jobs…", permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["retry"])

    @admin.action(description="Stop the selected jobs…", permissions=["stop"])
    def stop_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["stop"])

    @admin.action(description="Dead-letter the selected jobs…", permissions=["dead_letter"])
    def dead_letter_jobs(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["dead-letter"])

