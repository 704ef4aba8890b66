//! `where_clause` arguments of the helpers: a piece of SQL that must be one expression and nothing
//! else. It is parsed by PostgreSQL's own parser inside `SELECT (...)` and the parse tree is
//! inspected, so a clause that closes the parenthesis, adds a FROM, a second statement or a
//! comment swallowing the rest is refused before any of it is executed. The helpers then check
//! its type and columns against the table (`SELECT (...)::boolean FROM tbl WHERE false`).

use crate::error::SafeguardError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

fn refuse(detail: &str) -> ! {
    SafeguardError::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, "where_clause must be a single SQL expression")
        .with_detail(detail.to_owned())
        .with_hint("Pass a condition over the table's columns, such as $$role = 'PRIMARY' AND removed_at IS NULL$$.")
        .report()
}

/// Returns `(clause)` if `clause` parses as exactly one expression; raises 42601 otherwise.
#[pg_extern(immutable, strict, parallel_safe)]
fn _single_expression(clause: &str) -> String {
    parse_single_expression(clause);
    format!("({clause})")
}

/// Where `clause` starts in the statement `parse_single_expression` hands to the parser.
const CLAUSE_OFFSET: usize = "SELECT (".len();

/// Parses `clause` inside `SELECT (...)` and returns its expression's raw parse tree (allocated
/// in the current memory context); raises 42601 unless it is exactly one expression.
fn parse_single_expression(clause: &str) -> *mut pg_sys::Node {
    if clause.trim().is_empty() {
        refuse("It is empty.");
    }
    if clause.contains('\0') {
        refuse("It contains a NUL byte.");
    }
    let Some(stmt) = crate::raw_sql::single_statement(&format!("SELECT ({clause})")) else {
        refuse("It holds more than one statement.")
    };
    // SAFETY: a raw parse tree from PostgreSQL's parser; we only read its nodes.
    unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_SelectStmt {
            refuse("It is not an expression.");
        }
        let select = stmt as *mut pg_sys::SelectStmt;
        let s = &*select;
        let one_target = !s.targetList.is_null() && (*s.targetList).length == 1;
        let nothing_else = s.distinctClause.is_null()
            && s.intoClause.is_null()
            && s.fromClause.is_null()
            && s.whereClause.is_null()
            && s.groupClause.is_null()
            && s.havingClause.is_null()
            && s.windowClause.is_null()
            && s.valuesLists.is_null()
            && s.sortClause.is_null()
            && s.limitOffset.is_null()
            && s.limitCount.is_null()
            && s.lockingClause.is_null()
            && s.withClause.is_null()
            && s.op == pg_sys::SetOperation::SETOP_NONE;
        if !one_target {
            refuse("It holds several expressions separated by commas.");
        }
        if !nothing_else {
            refuse("It continues past the expression (FROM, GROUP BY, ORDER BY, UNION, ...).");
        }
        // The parenthesis we opened must be the one that closes the expression: a clause such
        // as `a) OR (b` parses too, but then the expression does not span the whole text.
        if !parenthesis_balanced(clause) {
            refuse("Its parentheses do not balance.");
        }
        let target = (*(*s.targetList).elements).ptr_value as *mut pg_sys::ResTarget;
        (*target).val
    }
}

/// What the walk over a where_clause found: where its column references start, and whether it
/// holds something a trigger's WHEN condition cannot take.
#[derive(Default)]
struct ColumnReferences {
    starts: Vec<usize>,
    qualified: bool,
    subquery: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn collect_column_references(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: `context` is the ColumnReferences of qualified_expression(); the nodes come from
    // raw_parser.
    unsafe {
        let found = &mut *(context as *mut ColumnReferences);
        match (*node).type_ {
            pg_sys::NodeTag::T_ColumnRef => {
                let column = &*(node as *mut pg_sys::ColumnRef);
                let single_name = !column.fields.is_null()
                    && (*column.fields).length == 1
                    && (*((*(*column.fields).elements).ptr_value as *mut pg_sys::Node)).type_ == pg_sys::NodeTag::T_String;
                match usize::try_from(column.location) {
                    Ok(start) if single_name && start >= CLAUSE_OFFSET => found.starts.push(start - CLAUSE_OFFSET),
                    _ => found.qualified = true,
                }
                false
            }
            pg_sys::NodeTag::T_SubLink => {
                found.subquery = true;
                false
            }
            _ => pg_sys::raw_expression_tree_walker(node, Some(collect_column_references), context),
        }
    }
}

/// `(clause)` with every column reference prefixed by `qualifier` (`new` or `old`), for the WHEN
/// condition of a row trigger, which sees the row only as NEW and OLD. The column references are
/// found in PostgreSQL's parse tree, not by scanning the text, so names inside string literals,
/// quoted identifiers and function names are left alone. Raises 42601 for anything that is not
/// one expression, and 0A000 for a subquery or a column written with its table name (a trigger
/// condition can hold neither).
#[pg_extern(immutable, strict, parallel_safe)]
fn _qualified_expression(clause: &str, qualifier: &str) -> String {
    if qualifier != "new" && qualifier != "old" {
        SafeguardError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, "the qualifier must be new or old")
            .report()
    }
    let expression = parse_single_expression(clause);
    let mut found = ColumnReferences::default();
    // SAFETY: the walker reads the raw parse tree just built and writes only into `found`.
    unsafe {
        collect_column_references(expression, &mut found as *mut ColumnReferences as *mut std::ffi::c_void);
    }
    if found.subquery || found.qualified {
        SafeguardError::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "this where_clause cannot be checked per row",
        )
        .with_detail(if found.subquery {
            "It holds a subquery; the rule checks each row on its own."
        } else {
            "It names a column with its table; write the column names alone."
        })
        .with_hint("Pass a condition over the row's own columns, such as $$deleted_at IS NULL$$.")
        .report()
    }
    format!("({})", insert_at(clause, &found.starts, &format!("{qualifier}.")))
}

/// `text` with `prefix` inserted before each of the byte offsets `starts`.
fn insert_at(text: &str, starts: &[usize], prefix: &str) -> String {
    let mut starts = starts.to_vec();
    starts.sort_unstable();
    let mut out = String::with_capacity(text.len() + starts.len() * prefix.len());
    let mut copied = 0;
    for start in starts {
        out.push_str(&text[copied..start]);
        out.push_str(prefix);
        copied = start;
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether the parentheses outside string literals, quoted identifiers and comments balance and
/// never close more than they opened.
fn parenthesis_balanced(clause: &str) -> bool {
    let bytes = clause.as_bytes();
    let (mut depth, mut i) = (0i64, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => return false,
            b'/' if bytes.get(i + 1) == Some(&b'*') => return false,
            b'$' => return false,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    depth == 0
}

#[cfg(test)]
mod tests {
    use super::{insert_at, parenthesis_balanced};

    #[test]
    fn prefixes_go_where_the_column_references_start() {
        assert_eq!(insert_at("a = 1 AND \"B\" IS NULL", &[10, 0], "new."), "new.a = 1 AND new.\"B\" IS NULL");
        assert_eq!(insert_at("true", &[], "old."), "true");
    }

    #[test]
    fn balance() {
        assert!(parenthesis_balanced("role = 'PRIMARY' AND (removed_at IS NULL)"));
        assert!(parenthesis_balanced("note = ')'"));
        assert!(parenthesis_balanced("\"odd)\" = 1"));
        assert!(!parenthesis_balanced("a) OR (b"));
        assert!(!parenthesis_balanced("a -- comment"));
        assert!(!parenthesis_balanced("a /* x */"));
        assert!(!parenthesis_balanced("$$x$$ = 'y'"));
        assert!(!parenthesis_balanced("(a"));
    }
}
