"""Alembic: the extension's helpers as migration operations, and the filter that keeps
``alembic revision --autogenerate`` quiet about what the extension made.

Import it once in ``env.py`` (it registers the operations) and pass the filters::

    import pg_safeguard.alembic
    context.configure(connection=connection, target_metadata=target_metadata,
                      **pg_safeguard.alembic.autogenerate_options(connection))

Then, in a migration::

    op.isolate("patients")                                  # safeguard.isolate('patients')
    op.enable_audit("patients", exclude_columns=["notes"])
    op.require_unique("patients", ["tenant_id", "mrn"], where="deleted_at IS NULL")

    # downgrade
    op.drop_rule_of("require_unique", "patients", ["tenant_id", "mrn"], where="deleted_at IS NULL")
    op.disable_audit("patients")
    op.unisolate("patients")

Each operation is one ``SELECT safeguard.<helper>(...)`` with bound values; tables are named by
``table`` and an optional ``schema`` and quoted by the database (``quote_ident``), so any name a
model can have works. The helpers are idempotent: running a migration again changes nothing.
The operations work offline too (``alembic upgrade --sql``): the values are rendered as literals.

Undoing a rule helper (``op.drop_rule_of``) finds the rule in ``safeguard.rule_registry`` by the
DDL the same, idempotent, call returns; where the rule is already gone that call makes it again
and the next statement drops it, so a downgrade can run twice (at the cost of building the rule
once more).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from alembic.operations import MigrateOperation, Operations
from sqlalchemy import Boolean, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import TextClause

__all__ = ["autogenerate_options", "SafeguardCall"]


def _table(key: str) -> str:
    """SQL for a regclass named by the bound parameters ``<key>`` and ``<key>_schema``."""
    return f"CAST(concat_ws('.', quote_ident(CAST(:{key}_schema AS text)), quote_ident(CAST(:{key} AS text))) AS regclass)"


class SafeguardCall(MigrateOperation):
    """One call of a pg_safeguard helper: ``SELECT safeguard.<function>(<arguments>)``, its values
    bound, and the operation that undoes it."""

    def __init__(self, function: str, arguments: List[str], values: Dict[str, Any],
                 types: Optional[Dict[str, Any]] = None, undo: Optional["SafeguardCall"] = None) -> None:
        self.function = function
        self.arguments = arguments
        self.values = values
        self.types = types or {}
        self.undo = undo

    def expressions(self) -> List[str]:
        """What the operation SELECTs, one statement each."""
        return [f"safeguard.{self.function}({', '.join(self.arguments)})"]

    def statements(self) -> List[TextClause]:
        params = [bindparam(name, value, type_=self.types.get(name, Text if isinstance(value, str) or value is None else None))
                  for name, value in self.values.items()]
        statements = []
        for expression in self.expressions():
            clause = text(f"SELECT {expression}")
            # Each statement binds the values it names.
            statements.append(clause.bindparams(*[p for p in params if re.search(rf":{p.key}\b", expression)]))
        return statements

    def reverse(self) -> "SafeguardCall":
        if self.undo is None:
            raise NotImplementedError(f"safeguard.{self.function}() has no inverse operation")
        return self.undo


class _DropRuleMadeBy(SafeguardCall):
    """The undo of a rule helper: the rule whose registry DDL is what the (idempotent) helper
    returns for the same arguments. Two statements: the helper first — where the rule is already
    gone it makes it again, and a statement does not see rows it inserted itself — then the drop,
    with the helper in an uncorrelated subquery (run once; now a no-op returning the same DDL)."""

    def __init__(self, made: SafeguardCall) -> None:
        super().__init__(made.function, made.arguments, made.values, made.types)

    def expressions(self) -> List[str]:
        call = super().expressions()[0]
        return [call, "safeguard.drop_rule(r.tbl, r.name) FROM safeguard.rule_registry r "
                      f"WHERE r.ddl = (SELECT {call})"]


def _names(values: Optional[Sequence[str]]) -> List[str]:
    return list(values or [])


_TEXT_ARRAY = ARRAY(Text)


def _call(function: str, table: str, schema: Optional[str], extra: List[tuple], undo: Optional[SafeguardCall] = None) -> SafeguardCall:
    """A helper call whose first argument is a table; ``extra``: (argument name, value, type)."""
    arguments, values, types = [_table("tbl")], {"tbl": table, "tbl_schema": schema}, {}
    for name, value, type_ in extra:
        arguments.append(f"{name} => CAST(:{name} AS {type_})")
        values[name] = value
        if type_.endswith("[]"):
            types[name] = _TEXT_ARRAY
        elif type_ == "boolean":
            types[name] = Boolean
    return SafeguardCall(function, arguments, values, types, undo)


def _rule_undo(function: str, table: str, schema: Optional[str], extra: List[tuple]) -> SafeguardCall:
    return _DropRuleMadeBy(_call(function, table, schema, extra))


@Operations.implementation_for(SafeguardCall)
def _run_call(operations: Operations, operation: SafeguardCall) -> None:
    for statement in operation.statements():
        if operations.migration_context.as_sql:
            # Offline (alembic upgrade --sql): the values written into the script as literals.
            dialect = operations.migration_context.dialect
            statement = text(str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
        operations.execute(statement)


def _register(name: str):
    """Registers the op class under ``op.<name>`` and routes it to ``_run_call``."""
    def register(op_cls):
        Operations.register_operation(name)(op_cls)
        Operations.implementation_for(op_cls)(_run_call)
        return op_cls
    return register


# Tenant isolation ------------------------------------------------------------------------------

@_register("isolate")
class IsolateOp(SafeguardCall):
    @classmethod
    def isolate(cls, operations: Operations, table: str, tenant_column: str = "tenant_id", *,
                schema: Optional[str] = None, admin_role: Optional[str] = None) -> None:
        """``safeguard.isolate(table, tenant_column, admin_role)``; undone by ``op.unisolate``."""
        undo = _call("unisolate", table, schema, [])
        call = _call("isolate", table, schema, [("tenant_column", tenant_column, "name"), ("admin_role", admin_role, "name")], undo)
        return operations.invoke(call)


@_register("unisolate")
class UnisolateOp(SafeguardCall):
    @classmethod
    def unisolate(cls, operations: Operations, table: str, *, schema: Optional[str] = None) -> None:
        """``safeguard.unisolate(table)``: the table's policies and forced row security removed."""
        return operations.invoke(_call("unisolate", table, schema, []))


@_register("isolate_via")
class IsolateViaOp(SafeguardCall):
    @classmethod
    def isolate_via(cls, operations: Operations, table: str, fk_column: str, parent: str,
                    parent_column: str = "id", *, schema: Optional[str] = None,
                    parent_schema: Optional[str] = None) -> None:
        """``safeguard.isolate_via(table, fk_column, parent, parent_column)``."""
        call = _call("isolate_via", table, schema, [("fk_column", fk_column, "name")], _call("unisolate", table, schema, []))
        call.arguments.append(f"parent => {_table('parent')}")
        call.values.update(parent=parent, parent_schema=parent_schema)
        call.arguments.append("parent_column => CAST(:parent_column AS name)")
        call.values["parent_column"] = parent_column
        return operations.invoke(call)


@_register("isolate_all")
class IsolateAllOp(SafeguardCall):
    @classmethod
    def isolate_all(cls, operations: Operations, tenant_column: str = "tenant_id", in_schema: str = "public") -> None:
        """``safeguard.isolate_all(tenant_column, in_schema)``: every table of the schema with the column."""
        return operations.invoke(SafeguardCall(
            "isolate_all", ["CAST(:tenant_column AS name)", "CAST(:in_schema AS name)"],
            {"tenant_column": tenant_column, "in_schema": in_schema}))


@_register("auto_isolate")
class AutoIsolateOp(SafeguardCall):
    @classmethod
    def auto_isolate(cls, operations: Operations, tenant_column: str = "tenant_id", in_schema: str = "public") -> None:
        """``safeguard.auto_isolate(tenant_column, in_schema)``; undone by ``op.auto_isolate_off``."""
        undo = SafeguardCall("auto_isolate_off", ["CAST(:in_schema AS name)"], {"in_schema": in_schema})
        return operations.invoke(SafeguardCall(
            "auto_isolate", ["CAST(:tenant_column AS name)", "CAST(:in_schema AS name)"],
            {"tenant_column": tenant_column, "in_schema": in_schema}, undo=undo))


@_register("auto_isolate_off")
class AutoIsolateOffOp(SafeguardCall):
    @classmethod
    def auto_isolate_off(cls, operations: Operations, in_schema: str = "public") -> None:
        """``safeguard.auto_isolate_off(in_schema)``."""
        return operations.invoke(SafeguardCall("auto_isolate_off", ["CAST(:in_schema AS name)"], {"in_schema": in_schema}))


@_register("scope_foreign_key")
class ScopeForeignKeyOp(SafeguardCall):
    @classmethod
    def scope_foreign_key(cls, operations: Operations, table: str, constraint_name: str, *,
                          schema: Optional[str] = None) -> None:
        """``safeguard.scope_foreign_key(table, constraint_name)``; undone by ``op.drop_rule_of``."""
        extra = [("constraint_name", constraint_name, "name")]
        return operations.invoke(_call("scope_foreign_key", table, schema, extra, _scoped_key_undo(table, schema, constraint_name)))


def _scoped_key_undo(table: str, schema: Optional[str], constraint_name: str) -> SafeguardCall:
    """The rule of a scoped key bears the key's name; dropping it restores the key. (The parent's
    unique key on (tenant, key) that scope_foreign_key made is a rule of its own, kept: other keys
    may use it.) Nothing to do when the rule is gone."""
    return _Select(f"safeguard.drop_rule(r.tbl, r.name) FROM safeguard.rule_registry r WHERE r.tbl = {_table('tbl')} "
                   "AND r.kind = 'scoped_foreign_key' AND r.name = CAST(:constraint_name AS text)",
                   {"tbl": table, "tbl_schema": schema, "constraint_name": constraint_name})


class _Select(SafeguardCall):
    """A SELECT of one expression over bound values."""

    def __init__(self, expression: str, values: Dict[str, Any]) -> None:
        super().__init__("", [], values)
        self.expression = expression

    def expressions(self) -> List[str]:
        return [self.expression]


# Audit -----------------------------------------------------------------------------------------

@_register("enable_audit")
class EnableAuditOp(SafeguardCall):
    @classmethod
    def enable_audit(cls, operations: Operations, table: str, exclude_columns: Optional[Sequence[str]] = None,
                     log_unchanged: bool = False, *, schema: Optional[str] = None) -> None:
        """``safeguard.enable_audit(table, exclude_columns, log_unchanged)``; undone by ``op.disable_audit``."""
        extra = [("exclude_columns", _names(exclude_columns), "name[]"), ("log_unchanged", log_unchanged, "boolean")]
        return operations.invoke(_call("enable_audit", table, schema, extra, _call("disable_audit", table, schema, [])))


@_register("disable_audit")
class DisableAuditOp(SafeguardCall):
    @classmethod
    def disable_audit(cls, operations: Operations, table: str, *, schema: Optional[str] = None) -> None:
        """``safeguard.disable_audit(table)``: no new entries; the log keeps the old ones."""
        return operations.invoke(_call("disable_audit", table, schema, []))


# Rules (each returns the DDL it ran; undone by op.drop_rule_of with the same arguments) ----------

def _rule_arguments(function: str, spec: List[tuple], args: Sequence[Any], kwargs: Dict[str, Any]) -> List[tuple]:
    names = [name for name, _ in spec]
    if len(args) > len(spec):
        raise TypeError(f"op.{function}() takes at most {len(spec) + 1} positional arguments")
    given = dict(zip(names, args))
    for key, value in kwargs.items():
        key = _ALIASES.get(key, key)
        if key not in names or key in given:
            raise TypeError(f"op.{function}() got an unexpected or repeated argument {key!r}")
        given[key] = value
    return [(name, _names(given[name]) if type_.endswith("[]") else given[name], type_)
            for name, type_ in spec if name in given]


# Short names for the helpers' argument names (``where=`` for ``where_clause=``).
_ALIASES = {"where": "where_clause"}

_RULES = {
    "require_unique": [("columns", "name[]"), ("where_clause", "text")],
    "require_values": [("col", "name"), ("allowed", "text[]")],
    "require_order": [("start_col", "name"), ("end_col", "name"), ("allow_equal", "boolean")],
    "forbid_overlap": [("start_col", "name"), ("end_col", "name"), ("same_columns", "name[]"), ("where_clause", "text")],
    "make_append_only": [],
    "protect_columns": [("columns", "name[]")],
    "maintain_timestamps": [("created_col", "name"), ("updated_col", "name")],
    "enable_soft_delete": [("col", "name"), ("hard_delete_role", "name")],
}


def _rule(operations: Operations, function: str, table: str, schema: Optional[str], **given: Any) -> None:
    """Runs a rule helper with the arguments given (None: the helper's default)."""
    extra = _rule_arguments(function, _RULES[function], (), {k: v for k, v in given.items() if v is not None})
    return operations.invoke(_call(function, table, schema, extra, _rule_undo(function, table, schema, extra)))


@_register("require_unique")
class RequireUniqueOp(SafeguardCall):
    @classmethod
    def require_unique(cls, operations: Operations, table: str, columns: Sequence[str], where: Optional[str] = None,
                       *, schema: Optional[str] = None) -> None:
        """``safeguard.require_unique(table, columns, where_clause)``: a unique index, partial with ``where``."""
        return _rule(operations, "require_unique", table, schema, columns=columns, where_clause=where)


@_register("require_values")
class RequireValuesOp(SafeguardCall):
    @classmethod
    def require_values(cls, operations: Operations, table: str, col: str, allowed: Sequence[str], *,
                       schema: Optional[str] = None) -> None:
        """``safeguard.require_values(table, col, allowed)``: a CHECK that the column is one of ``allowed``."""
        return _rule(operations, "require_values", table, schema, col=col, allowed=allowed)


@_register("require_order")
class RequireOrderOp(SafeguardCall):
    @classmethod
    def require_order(cls, operations: Operations, table: str, start_col: str, end_col: str,
                      allow_equal: Optional[bool] = None, *, schema: Optional[str] = None) -> None:
        """``safeguard.require_order(table, start_col, end_col, allow_equal)``."""
        return _rule(operations, "require_order", table, schema, start_col=start_col, end_col=end_col,
                     allow_equal=allow_equal)


@_register("forbid_overlap")
class ForbidOverlapOp(SafeguardCall):
    @classmethod
    def forbid_overlap(cls, operations: Operations, table: str, start_col: str, end_col: str,
                       same_columns: Optional[Sequence[str]] = None, where: Optional[str] = None, *,
                       schema: Optional[str] = None) -> None:
        """``safeguard.forbid_overlap(table, start_col, end_col, same_columns, where_clause)``."""
        return _rule(operations, "forbid_overlap", table, schema, start_col=start_col, end_col=end_col,
                     same_columns=same_columns, where_clause=where)


@_register("make_append_only")
class MakeAppendOnlyOp(SafeguardCall):
    @classmethod
    def make_append_only(cls, operations: Operations, table: str, *, schema: Optional[str] = None) -> None:
        """``safeguard.make_append_only(table)``: UPDATE, DELETE and TRUNCATE refused."""
        return _rule(operations, "make_append_only", table, schema)


@_register("protect_columns")
class ProtectColumnsOp(SafeguardCall):
    @classmethod
    def protect_columns(cls, operations: Operations, table: str, columns: Sequence[str], *,
                        schema: Optional[str] = None) -> None:
        """``safeguard.protect_columns(table, columns)``: the columns cannot change after INSERT."""
        return _rule(operations, "protect_columns", table, schema, columns=columns)


@_register("maintain_timestamps")
class MaintainTimestampsOp(SafeguardCall):
    @classmethod
    def maintain_timestamps(cls, operations: Operations, table: str, created_col: Optional[str] = None,
                            updated_col: Optional[str] = None, *, schema: Optional[str] = None) -> None:
        """``safeguard.maintain_timestamps(table, created_col, updated_col)``: the database's clock."""
        return _rule(operations, "maintain_timestamps", table, schema, created_col=created_col, updated_col=updated_col)


@_register("enable_soft_delete")
class EnableSoftDeleteOp(SafeguardCall):
    @classmethod
    def enable_soft_delete(cls, operations: Operations, table: str, col: Optional[str] = None,
                           hard_delete_role: Optional[str] = None, *, schema: Optional[str] = None) -> None:
        """``safeguard.enable_soft_delete(table, col, hard_delete_role)``."""
        return _rule(operations, "enable_soft_delete", table, schema, col=col, hard_delete_role=hard_delete_role)


def _maintain_count_call(parent: str, counter_col: str, child: str, fk_col: str, where: Optional[str] = None, *,
                         schema: Optional[str] = None, child_schema: Optional[str] = None) -> SafeguardCall:
    call = _call("maintain_count", parent, schema, [("counter_col", counter_col, "name")])
    call.arguments.append(f"child => {_table('child')}")
    call.values.update(child=child, child_schema=child_schema)
    call.arguments.append("fk_col => CAST(:fk_col AS name)")
    call.values["fk_col"] = fk_col
    if where is not None:
        call.arguments.append("where_clause => CAST(:where_clause AS text)")
        call.values["where_clause"] = where
    call.undo = _DropRuleMadeBy(call)
    return call


@_register("maintain_count")
class MaintainCountOp(SafeguardCall):
    @classmethod
    def maintain_count(cls, operations: Operations, parent: str, counter_col: str, child: str, fk_col: str,
                       where: Optional[str] = None, *, schema: Optional[str] = None,
                       child_schema: Optional[str] = None) -> None:
        """``safeguard.maintain_count(parent, counter_col, child, fk_col, where_clause)``; undone by
        ``op.drop_rule_of('maintain_count', ...)`` with the same arguments."""
        return operations.invoke(_maintain_count_call(parent, counter_col, child, fk_col, where,
                                                      schema=schema, child_schema=child_schema))


@_register("drop_rule_of")
class DropRuleOfOp(SafeguardCall):
    @classmethod
    def drop_rule_of(cls, operations: Operations, function: str, table: str, *args: Any,
                     schema: Optional[str] = None, **kwargs: Any) -> None:
        """Drops the rule that ``op.<function>(table, *args, **kwargs)`` made (the downgrade of a
        rule helper), found in ``safeguard.rule_registry`` by the DDL that call returns."""
        if function == "maintain_count":
            return operations.invoke(_maintain_count_call(table, *args, schema=schema, **kwargs).reverse())
        if function not in _RULES and function != "scope_foreign_key":
            raise ValueError("op.drop_rule_of() takes the name of a rule helper: "
                             f"{sorted([*_RULES, 'scope_foreign_key', 'maintain_count'])}")
        if function == "scope_foreign_key":
            (constraint_name,) = args or (kwargs["constraint_name"],)
            return operations.invoke(_scoped_key_undo(table, schema, constraint_name))
        extra = _rule_arguments(function, _RULES[function], args, kwargs)
        return operations.invoke(_rule_undo(function, table, schema, extra))


@_register("drop_rule")
class DropRuleOp(SafeguardCall):
    @classmethod
    def drop_rule(cls, operations: Operations, table: str, name: str, *, schema: Optional[str] = None) -> None:
        """``safeguard.drop_rule(table, name)``: the rule's objects dropped, as its registry row says."""
        return operations.invoke(_call("drop_rule", table, schema, [("name", name, "text")]))


@_register("classify")
class ClassifyOp(SafeguardCall):
    @classmethod
    def classify(cls, operations: Operations, table: str, columns: Sequence[str], data_class: str, *,
                 schema: Optional[str] = None) -> None:
        """``safeguard.classify(table, columns, class)``: columns marked (for example 'phi') for lint."""
        return operations.invoke(_call("classify", table, schema, [("columns", _names(columns), "name[]"),
                                                                    ("class", data_class, "text")]))


@_register("create_decrypted_view")
class CreateDecryptedViewOp(SafeguardCall):
    @classmethod
    def create_decrypted_view(cls, operations: Operations, table: str, view_name: Optional[str] = None, *,
                              schema: Optional[str] = None) -> None:
        """``safeguard.create_decrypted_view(table, view_name)``."""
        return operations.invoke(_call("create_decrypted_view", table, schema, [("view_name", view_name, "name")]))


# Autogenerate ----------------------------------------------------------------------------------

def autogenerate_options(connection: Any) -> Dict[str, Any]:
    """``include_name`` and ``include_object`` for ``context.configure(...)`` that keep out of an
    autogenerated migration what the extension made and no model declares: the ``safeguard``
    schema (when ``include_schemas`` is on), the helpers' indexes (named ``sg_...``), and the
    foreign keys ``scope_foreign_key`` widened to (tenant, key), which the models keep declaring
    on the key alone. Policies, triggers and check constraints are not compared by Alembic.

    Reads the scoped keys from ``safeguard.rule_registry`` once, through ``connection``."""
    # Read without leaving a transaction open: Alembic's own begin_transaction() must start it,
    # or the migration it runs would never be committed.
    had_transaction = connection.in_transaction()
    rows = connection.execute(text(
        "SELECT c.relname, r.name FROM safeguard.rule_registry r JOIN pg_class c ON c.oid = r.tbl "
        "WHERE r.kind = 'scoped_foreign_key'"))
    scoped = {(table, key) for table, key in rows}
    if not had_transaction:
        connection.rollback()

    def include_name(name: Optional[str], type_: str, parent_names: Dict[str, Any]) -> bool:
        if type_ == "schema":
            return name != "safeguard"
        if type_ in ("index", "unique_constraint") and name and name.startswith("sg_"):
            return False
        if type_ == "foreign_key_constraint" and (parent_names.get("table_name"), name) in scoped:
            return False
        return True

    def include_object(obj: Any, name: Optional[str], type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and getattr(obj, "schema", None) == "safeguard":
            return False
        if type_ == "foreign_key_constraint" and (getattr(obj.parent, "name", None), name) in scoped:
            return False
        return True

    return {"include_name": include_name, "include_object": include_object}
