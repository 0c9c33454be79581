"""Changelists for tables of millions of rows: no COUNT(*), ever.

Django's changelist counts the filtered rows on every page load (``paginator.count``), and
``show_full_result_count = False`` only drops the *second*, unfiltered count. On the ledger
either is a scan of the table. These pages instead read one row past the page: that row says
whether an older page exists, and the pager offers "newer" and "older" instead of page
numbers. Ordering is fixed to an indexed one and facet counts are off.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import InvalidPage, Page, Paginator

from billing.db import replica_or_primary


class PeekPaginator(Paginator):
    """Pages that know only whether another one follows: the page's rows plus one are read, once.

    ``count`` is a lower bound (the rows before this page, this page's, and one more if
    another page follows), enough for the admin to decide there is more than one page.
    """

    def __init__(self, object_list: Any, per_page: int, *, page_number: int) -> None:
        super().__init__(object_list, per_page, allow_empty_first_page=True)
        self.page_number = max(page_number, 1)

    @cached_property
    def _rows(self) -> list:
        offset = (self.page_number - 1) * self.per_page
        return list(self.object_list[offset : offset + self.per_page + 1])

    @cached_property
    def count(self) -> int:
        return (self.page_number - 1) * self.per_page + len(self._rows)

    @property
    def has_older(self) -> bool:
        return len(self._rows) > self.per_page

    def page(self, number: int) -> Page:
        number = self.validate_number(number)
        if number != self.page_number:
            return super().page(number)
        return self._get_page(self._rows[: self.per_page], number, self)


class PeekChangeList(ChangeList):
    """A changelist whose results are one LIMIT query: no count, no "show all".

    Read from the replica when there is one (``replica_or_primary``): these lists are history
    that may lag a moment, and their filters and searches are the admin's heaviest reads. Only
    the list (and what the model admin builds on its queryset: the ledger's search and CSV
    export); a row's own page, and every action's decision, read the primary.
    """

    def get_queryset(self, request, exclude_parameters=None):
        # The root queryset is what the filters and the model admin's search start from.
        self.root_queryset = self.root_queryset.using(replica_or_primary())
        return super().get_queryset(request, exclude_parameters)

    def get_ordering(self, request, queryset) -> list[str]:
        # Only the admin's own indexed order: Django honours a column sort in the query string
        # (?o=3) even with no sortable column, and on millions of rows that is a full sort.
        return list(self.model_admin.get_ordering(request))

    def get_results(self, request) -> None:
        paginator = PeekPaginator(self.queryset, self.list_per_page, page_number=self.page_num)
        try:
            page = paginator.page(self.page_num)
        except InvalidPage:
            raise IncorrectLookupParameters from None
        self.paginator = paginator
        self.result_list = page.object_list
        self.result_count = paginator.count
        # Django's search form prints "N results (Show all)" when these differ; neither is a real
        # count here (the paginator's is a lower bound), so they are made equal and it prints none.
        self.full_result_count = self.result_count
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        self.multi_page = paginator.num_pages > 1
        self.first_shown = (self.page_num - 1) * self.list_per_page + 1
        self.last_shown = self.first_shown + len(page.object_list) - 1
        self.newer_url = self.get_query_string({PAGE_VAR: self.page_num - 1}) if self.page_num > 1 else ""
        self.older_url = self.get_query_string({PAGE_VAR: self.page_num + 1}) if paginator.has_older else ""


class PeekPagedAdmin(admin.ModelAdmin):
    """For the big append-only tables (ledger, Stripe events): newest first, paged without counting.

    Its list (``admin/billing/peek_change_list.html``, which a model's own list template
    extends) shows "newer / older" instead of page numbers, and the search form no result
    count (``PeekChangeList.get_results``).
    """

    change_list_template = "admin/billing/peek_change_list.html"

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts are a COUNT per filter choice
    sortable_by = ()  # only the indexed newest-first order
    list_max_show_all = 0
    actions_selection_counter = False  # its "select all N" would offer the lower-bound count

    def get_changelist(self, request, **kwargs):
        return PeekChangeList


class NoWrites:
    """Nobody adds, changes or deletes these rows from the admin, superusers included: services own them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoWrites, admin.ModelAdmin):
    """A model admin that only shows."""
