"""Statements a hold runs on every sale, compiled once and run with less of SQLAlchemy per execution.

SQLAlchemy still builds these statements, compiles them (once per database, and per number of
values in each IN list), converts parameters and results with the column types' own processors,
fires the engine's cursor events (the audit log's guard, statement counters) and wraps driver
errors as for any statement (`Connection._cursor_execute`). What a run skips is the rest of a
Core execution: the compiled-cache lookup (a walk of the whole statement), rendering the IN lists
again, the execution context and the result's metadata. For the hold's first statement that
was about 200 µs of client CPU per run against about 280 µs for the driver itself.

Only what Core's execution alone does is not done: a column left to a Python-side default (or
onupdate) is refused when the statement is compiled, so every value is given explicitly.
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa


class Precompiled:
    """A statement built by `build()` on first use; `rows`, `first`, `inserted_id` and `rowcount`
    run it on a connection with a dict of its parameters (lists for its expanding IN parameters)."""

    def __init__(self, build: Callable[[], sa.Executable]):
        self._build = build
        self._statement = None
        self._forms: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # dialect -> {lengths: _Form}
        self._lock = threading.Lock()

    def rows(self, connection: sa.Connection, params: Mapping) -> list:
        return self._execute(connection, params, lambda cursor, form: form.rows(cursor, connection.dialect))

    def first(self, connection: sa.Connection, params: Mapping):
        rows = self.rows(connection, params)
        return rows[0] if rows else None

    def inserted_id(self, connection: sa.Connection, params: Mapping) -> int:
        """Run an INSERT of one row: the id the database gave it."""
        return self._execute(connection, params, lambda cursor, _: cursor.lastrowid)

    def rowcount(self, connection: sa.Connection, params: Mapping) -> int:
        """The rows an UPDATE matched (the MySQL dialects count matched rows, not changed ones)."""
        return self._execute(connection, params, lambda cursor, _: cursor.rowcount)

    @property
    def statement(self) -> sa.Executable:
        if self._statement is None:
            self._statement = self._build()
        return self._statement

    def _execute(self, connection: sa.Connection, params: Mapping, read: Callable):
        """Run the statement and return `read(cursor, form)`: events, logging and errors as Core's."""
        form = self._form(connection.dialect, params)
        cursor = connection.connection.cursor()
        try:
            connection._cursor_execute(cursor, form.sql, form.values(params))
            return read(cursor, form)
        finally:
            cursor.close()

    def _form(self, dialect, params: Mapping) -> _Form:
        lengths = tuple(sorted((name, len(v)) for name, v in params.items() if isinstance(v, list | tuple)))
        forms = self._forms.get(dialect)
        form = forms.get(lengths) if forms is not None else None
        if form is None:
            with self._lock:
                compiled = self.statement.compile(dialect=dialect)
                if compiled.insert_prefetch or compiled.update_prefetch:  # run by Core's execution only
                    raise ValueError(f"give a value to every column with a Python-side default: {self.statement}")
                form = _Form.expanded(compiled, params, getattr(self.statement, "selected_columns", None))
                self._forms.setdefault(dialect, {})[lengths] = form
        return form


@dataclass
class _Form:
    """The statement as sent for one set of IN-list lengths, and how to fill it in."""

    sql: str
    names: frozenset[str]  # the statement's parameters
    constants: dict  # the values compiled into the statement (e.g. a status it compares with), converted
    expansion: Mapping[str, list[str]]  # an IN parameter -> the names its values are sent as
    processors: Mapping[str, Callable]
    positions: tuple[str, ...] | None  # the parameters' order, for positional drivers (SQLite)
    columns: list | None  # a SELECT's columns: their keys and types
    row_type: type | None = None
    converters: list | None = None

    @classmethod
    def expanded(cls, compiled, params: Mapping, columns) -> _Form:
        state = compiled.construct_expanded_state(dict(params))
        supplied = {name for names in state.parameter_expansion.values() for name in names} | set(params)
        # The expanded parameters' processors, and (as Core's execution takes them) everyone else's
        processors = {**compiled._bind_processors, **state.processors}
        constants = {name: value for name, value in state.parameters.items() if name not in supplied}
        return cls(
            sql=state.statement,
            names=frozenset(compiled.binds),
            constants={name: _converted(processors.get(name), value) for name, value in constants.items()},
            expansion=state.parameter_expansion,
            processors=processors,
            positions=tuple(state.positiontup) if state.positiontup is not None else None,
            columns=list(columns) if columns is not None else None,
        )

    def values(self, params: Mapping):
        if not self.names.issuperset(params):  # a value the statement would silently drop
            raise ValueError(f"not parameters of the statement: {sorted(set(params) - self.names)}")
        values = dict(self.constants)  # converted once, when the form was made
        for name, value in params.items():
            expanded = self.expansion.get(name)
            for key, item in ((name, value),) if expanded is None else zip(expanded, value, strict=True):
                values[key] = _converted(self.processors.get(key), item)
        if self.positions is not None:
            return tuple(values[name] for name in self.positions)
        return values

    def rows(self, cursor, dialect) -> list:
        fetched = cursor.fetchall()
        if self.row_type is None:  # the driver's column types are known once a result came back
            self.converters = [
                column.type.dialect_impl(dialect).result_processor(dialect, description[1])
                for column, description in zip(self.columns, cursor.description, strict=True)
            ]
            self.row_type = collections.namedtuple("Row", [column.key for column in self.columns])
        converters, make = self.converters, self.row_type._make
        if not any(converters):
            return [make(row) for row in fetched]
        return [
            make(value if convert is None else convert(value) for convert, value in zip(converters, row, strict=True))
            for row in fetched
        ]


def _converted(process: Callable | None, value):
    return value if process is None else process(value)
