"""A segment's filter: conditions (bot/segments/conditions.py) that a customer must all meet, and its JSON
form {"conditions": [{"kind": ..., ...}, ...]} as saved, posted by the console and given to the CLI."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from sqlalchemy import and_, select, true
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from bot.models import Customer, CustomerOrderStats
from bot.segments.conditions import Condition, FilterContext, SegmentError, condition_from_json

MAX_CONDITIONS = 20


@dataclass(frozen=True)
class SegmentFilter:
    conditions: Tuple[Condition, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> "SegmentFilter":
        """The filter from its JSON form (parsed, or as text); SegmentError says what is wrong."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError as error:
                raise SegmentError(f"the filter is not JSON: {error}") from None
        if isinstance(data, list):
            data = {"conditions": data}
        if not isinstance(data, dict) or not isinstance(data.get("conditions", []), list) or set(data) - {"conditions"}:
            raise SegmentError('a filter is {"conditions": [...]}')
        items = data.get("conditions", [])
        if len(items) > MAX_CONDITIONS:
            raise SegmentError(f"a filter has at most {MAX_CONDITIONS} conditions, not {len(items)}")
        conditions = []
        for number, item in enumerate(items, 1):
            try:
                conditions.append(condition_from_json(item))
            except SegmentError as error:
                raise SegmentError(f"condition {number}: {error}") from None
        return cls(tuple(conditions))

    def to_json(self) -> Dict[str, Any]:
        return {"conditions": [condition.to_json() for condition in self.conditions]}

    def where(self, context: FilterContext) -> ColumnElement:
        return and_(true(), *(condition.where(context) for condition in self.conditions))

    def member_ids(self, context: FilterContext) -> Select:
        """SELECT id of every member, each once. Conditions over order totals (recency, frequency, spend) are
        one scan of customer_order_stats, and that drives the count when there is one; else the first
        condition with a driver (its own table's ids: no scan of the million customers rows) does; the
        other conditions are checked against those ids. Without a driver, it reads customers."""
        stats = [(condition, condition.order_stats(context)) for condition in self.conditions]
        merged = [condition for condition, predicate in stats if predicate is not None]
        if merged:
            ids = (select(CustomerOrderStats.customer_id)
                   .where(*(predicate for _, predicate in stats if predicate is not None))
                   .subquery("members").c[0])
            return select(ids.label("id")).where(
                *(other.membership(ids, context) for other in self.conditions if other not in merged))
        for condition in self.conditions:
            start = condition.driver(context)
            if start is not None:
                ids = start.subquery("members").c[0]
                return select(ids.label("id")).where(
                    *(other.membership(ids, context) for other in self.conditions if other is not condition))
        return select(Customer.id.label("id")).where(self.where(context))

    def describe(self) -> str:
        return "; ".join(condition.describe() for condition in self.conditions) or "every customer"
