//! What one audited row change puts in the log: pure logic, no PostgreSQL.
//!
//! The trigger compares each column of the old and new row (PostgreSQL's binary equality, in
//! the pgrx layer) and hands the outcome here, which decides which keys the logged JSON keeps.

/// One column of an audited row, as the trigger saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    pub name: &'a str,
    /// Never logged (`enable_audit(..., exclude_columns => ...)`).
    pub excluded: bool,
    /// For an UPDATE: old and new value are identical (both NULL counts as identical).
    pub unchanged: bool,
}

/// What to log for a row change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logged {
    /// Keys removed from `old_data`/`new_data`: excluded columns, and for an UPDATE the
    /// unchanged ones.
    pub dropped_keys: Vec<String>,
    /// For an UPDATE, the columns that changed (excluded ones never appear).
    pub changed_columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Update,
    Delete,
}

/// `None` when nothing is to be logged: an UPDATE that changed no logged column, unless
/// `log_unchanged` asks for those too.
pub fn what_to_log(change: Change, columns: &[Column<'_>], log_unchanged: bool) -> Option<Logged> {
    let excluded = columns
        .iter()
        .filter(|c| c.excluded)
        .map(|c| c.name.to_owned());
    match change {
        Change::Insert | Change::Delete => Some(Logged {
            dropped_keys: excluded.collect(),
            changed_columns: None,
        }),
        Change::Update => {
            let changed: Vec<String> = columns
                .iter()
                .filter(|c| !c.excluded && !c.unchanged)
                .map(|c| c.name.to_owned())
                .collect();
            if changed.is_empty() && !log_unchanged {
                return None;
            }
            let dropped_keys = columns
                .iter()
                .filter(|c| c.excluded || c.unchanged)
                .map(|c| c.name.to_owned())
                .collect();
            Some(Logged {
                dropped_keys,
                changed_columns: Some(changed),
            })
        }
    }
}

/// The trigger's arguments, as `enable_audit()` writes them:
/// `[tenant_column or '', 'true'|'false' (log_unchanged), N, N primary-key columns..., excluded columns...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerArgs {
    pub tenant_column: Option<String>,
    pub log_unchanged: bool,
    pub primary_key: Vec<String>,
    pub excluded: Vec<String>,
}

/// A trigger created by hand with other arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTriggerArgs;

pub fn parse_trigger_args(args: &[String]) -> Result<TriggerArgs, BadTriggerArgs> {
    let [tenant, log_unchanged, pk_count, rest @ ..] = args else {
        return Err(BadTriggerArgs);
    };
    let log_unchanged = match log_unchanged.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(BadTriggerArgs),
    };
    let pk_count: usize = pk_count.parse().map_err(|_| BadTriggerArgs)?;
    if pk_count > rest.len() {
        return Err(BadTriggerArgs);
    }
    let (primary_key, excluded) = rest.split_at(pk_count);
    Ok(TriggerArgs {
        tenant_column: (!tenant.is_empty()).then(|| tenant.clone()),
        log_unchanged,
        primary_key: primary_key.to_vec(),
        excluded: excluded.to_vec(),
    })
}

/// The columns removed from a row's JSON to leave its record id (`record_id`): every column but
/// the primary key's; none for a table without a primary key, whose record is its whole row.
pub fn non_key_columns<'a>(columns: impl IntoIterator<Item = &'a str>, primary_key: &[String]) -> Vec<String> {
    if primary_key.is_empty() {
        return vec![];
    }
    columns
        .into_iter()
        .filter(|c| !primary_key.iter().any(|k| k == c))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_keep_only_the_primary_key_or_the_whole_row() {
        let pk = vec!["id".to_owned(), "Org \"Id\"".to_owned()];
        assert_eq!(
            non_key_columns(["id", "name", "Org \"Id\"", "note"], &pk),
            vec!["name".to_owned(), "note".to_owned()]
        );
        assert!(non_key_columns(["id", "name"], &[]).is_empty());
    }

    fn col(name: &str, excluded: bool, unchanged: bool) -> Column<'_> {
        Column {
            name,
            excluded,
            unchanged,
        }
    }

    #[test]
    fn insert_and_delete_drop_only_excluded_columns() {
        let columns = [
            col("id", false, false),
            col("ssn", true, false),
            col("name", false, false),
        ];
        for change in [Change::Insert, Change::Delete] {
            let logged = what_to_log(change, &columns, false).unwrap();
            assert_eq!(logged.dropped_keys, ["ssn"]);
            assert_eq!(logged.changed_columns, None);
        }
    }

    #[test]
    fn update_keeps_only_changed_logged_columns() {
        let columns = [
            col("id", false, true),
            col("ssn", true, false),
            col("name", false, false),
        ];
        let logged = what_to_log(Change::Update, &columns, false).unwrap();
        assert_eq!(logged.dropped_keys, ["id", "ssn"]);
        assert_eq!(
            logged.changed_columns.as_deref(),
            Some(&["name".to_string()][..])
        );
    }

    #[test]
    fn update_of_nothing_or_only_excluded_columns_is_not_logged() {
        let unchanged = [col("id", false, true), col("name", false, true)];
        assert_eq!(what_to_log(Change::Update, &unchanged, false), None);
        let only_excluded = [col("id", false, true), col("ssn", true, false)];
        assert_eq!(what_to_log(Change::Update, &only_excluded, false), None);
        let logged = what_to_log(Change::Update, &only_excluded, true).unwrap();
        assert_eq!(logged.changed_columns, Some(vec![]));
        assert_eq!(logged.dropped_keys, ["id", "ssn"]);
    }

    #[test]
    fn trigger_args_round_trip() {
        let args: Vec<String> = ["tenant_id", "false", "2", "org", "id", "ssn", "notes"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            parse_trigger_args(&args),
            Ok(TriggerArgs {
                tenant_column: Some("tenant_id".into()),
                log_unchanged: false,
                primary_key: vec!["org".into(), "id".into()],
                excluded: vec!["ssn".into(), "notes".into()],
            })
        );
        let none: Vec<String> = ["", "true", "0"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            parse_trigger_args(&none),
            Ok(TriggerArgs {
                tenant_column: None,
                log_unchanged: true,
                primary_key: vec![],
                excluded: vec![]
            })
        );
    }

    #[test]
    fn malformed_trigger_args_are_rejected() {
        for args in [
            &["x"][..],
            &["", "maybe", "0"],
            &["", "true", "x"],
            &["", "true", "3", "a"],
        ] {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            assert_eq!(parse_trigger_args(&args), Err(BadTriggerArgs));
        }
    }
}
