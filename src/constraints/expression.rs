//! `where_clause` arguments of the helpers: a piece of SQL that must be one expression and nothing
//! else. It is parsed by PostgreSQL's own parser inside `SELECT (...)` and the parse tree is
//! inspected, so a clause that closes the parenthesis, adds a FROM, a second statement or a
//! comment swallowing the rest is refused before any of it is executed. The helpers then check
//! its type and columns against the table (`SELECT (...)::boolean FROM tbl WHERE false`).

use crate::error::SafeguardError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::ffi::CString;

fn refuse(detail: &str) -> ! {
    SafeguardError::new(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR, "where_clause must be a single SQL expression")
        .with_detail(detail.to_owned())
        .with_hint("Pass a condition over the table's columns, such as $$role = 'PRIMARY' AND removed_at IS NULL$$.")
        .report()
}

/// Returns `(clause)` if `clause` parses as exactly one expression; raises 42601 otherwise.
#[pg_extern(immutable, strict, parallel_safe)]
fn _single_expression(clause: &str) -> String {
    if clause.trim().is_empty() {
        refuse("It is empty.");
    }
    let wrapped = format!("SELECT ({clause})");
    let Ok(sql) = CString::new(wrapped.clone()) else { refuse("It contains a NUL byte.") };
    // SAFETY: raw_parser reads a NUL-terminated string and returns a List of RawStmt nodes (or
    // raises a syntax error); we only read the nodes.
    unsafe {
        let statements = pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if statements.is_null() || (*statements).length != 1 {
            refuse("It holds more than one statement.");
        }
        // The first cell of the List (a pointer list of RawStmt).
        let raw = (*(*statements).elements).ptr_value as *mut pg_sys::RawStmt;
        if raw.is_null() {
            refuse("It could not be read.");
        }
        let stmt = (*raw).stmt;
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_SelectStmt {
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
    }
    format!("({clause})")
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
    use super::parenthesis_balanced;

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
