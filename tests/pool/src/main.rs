//! Isolation through a real driver and a real connection pool.
//!
//! Many concurrent "requests", each for a random tenant, share a handful of pooled connections
//! (deadpool-postgres over tokio-postgres, as an async web service would). Every row any request
//! sees is checked against the tenant that request set; a single row of another tenant fails
//! the test. The request kinds mix what happens in real services:
//! - transaction + `set_context($1)` + query (the documented pattern);
//! - `set_context` and the query in one simple-query message (one round trip);
//! - a request that sets its context and then fails, so its connection returns to the pool
//!   after a ROLLBACK;
//! - a request that forgets `set_context` and must see nothing;
//! - a request that tries a session-level `SET safeguard.tenant_id`, which must be refused (or,
//!   before the library is loaded in that connection, discarded) and never become visible.
//!
//! The fixture (roles, the isolated table, rows per tenant) is created by scripts/client-test.sh;
//! connection parameters come from PGHOST, PGPORT, PGDATABASE and POOL_TEST_USER.

mod encryption;
mod params;
mod ulid_params;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use uuid::Uuid;

const TENANTS: u32 = 50;
const ROWS_PER_TENANT: i64 = 40;
const REQUESTS: usize = 4000;
const CONCURRENCY: usize = 64;
const POOL_SIZE: usize = 4;

fn tenant(n: u32) -> Uuid {
    Uuid::parse_str(&format!("0000000a-0000-4000-8000-{n:012x}")).expect("valid uuid")
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    rows_checked: AtomicU64,
    foreign_rows: AtomicU64,
    wrong_counts: AtomicU64,
    unexpected_errors: AtomicU64,
    refused_sets: AtomicU64,
    placeholder_sets: AtomicU64,
}

async fn request(pool: &Pool, kind: u32, t: u32, tally: &Tally) -> Result<(), String> {
    let mut client = pool.get().await.map_err(|e| format!("pool: {e}"))?;
    let expected = tenant(t);
    let check = |tenants: Vec<Uuid>, want: i64| {
        tally.rows_checked.fetch_add(tenants.len() as u64, Ordering::Relaxed);
        let foreign = tenants.iter().filter(|&&seen| seen != expected).count() as u64;
        tally.foreign_rows.fetch_add(foreign, Ordering::Relaxed);
        if tenants.len() as i64 != want {
            tally.wrong_counts.fetch_add(1, Ordering::Relaxed);
        }
    };
    match kind {
        // The documented pattern: a transaction that starts with set_context.
        0..=4 => {
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            tx.execute("SELECT safeguard.set_context($1)", &[&expected]).await.map_err(|e| e.to_string())?;
            let rows = tx.query("SELECT tenant_id FROM visits", &[]).await.map_err(|e| e.to_string())?;
            check(rows.iter().map(|r| r.get(0)).collect(), ROWS_PER_TENANT);
            tx.commit().await.map_err(|e| e.to_string())?;
        }
        // One round trip: both statements in one simple-query message (one implicit transaction).
        5..=6 => {
            let sql = format!(
                "SELECT safeguard.set_context('{expected}'); SELECT tenant_id::text FROM visits"
            );
            let messages = client.simple_query(&sql).await.map_err(|e| e.to_string())?;
            // Rows of the second statement: those after the first CommandComplete.
            let mut completed = 0;
            let mut tenants = Vec::new();
            for message in &messages {
                match message {
                    tokio_postgres::SimpleQueryMessage::CommandComplete(_) => completed += 1,
                    tokio_postgres::SimpleQueryMessage::Row(row) if completed == 1 => {
                        let text = row.get(0).ok_or("NULL tenant_id")?;
                        tenants.push(Uuid::parse_str(text).map_err(|e| e.to_string())?);
                    }
                    _ => {}
                }
            }
            check(tenants, ROWS_PER_TENANT);
        }
        // Sets its context, then fails: the connection goes back to the pool after ROLLBACK.
        7 => {
            let tx = client.transaction().await.map_err(|e| e.to_string())?;
            tx.execute("SELECT safeguard.set_context($1)", &[&expected]).await.map_err(|e| e.to_string())?;
            let failed = tx.execute("SELECT 1 / 0", &[]).await;
            if failed.is_ok() {
                return Err("division by zero succeeded".into());
            }
            // Dropping the transaction rolls it back.
        }
        // Forgets set_context: must see nothing, whatever the connection served before.
        8 => {
            let rows = client.query("SELECT tenant_id FROM visits", &[]).await.map_err(|e| e.to_string())?;
            check(rows.iter().map(|r| r.get(0)).collect(), 0);
        }
        // Tries a session-level setting that would outlive the request. Refused with 42501 once
        // the extension's library is loaded in the connection; on a connection that has not
        // loaded it yet, PostgreSQL keeps the value as a placeholder, which is discarded (with a
        // WARNING) as the library loads for the next query. Either way nothing is visible.
        _ => {
            let sql = format!("SET safeguard.tenant_id = '{expected}'");
            match client.batch_execute(&sql).await {
                Ok(()) => tally.placeholder_sets.fetch_add(1, Ordering::Relaxed),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                    tally.refused_sets.fetch_add(1, Ordering::Relaxed)
                }
                Err(e) => return Err(format!("unexpected error for SET: {e}")),
            };
            let rows = client.query("SELECT tenant_id FROM visits", &[]).await.map_err(|e| e.to_string())?;
            check(rows.iter().map(|r| r.get(0)).collect(), 0);
            let leftover: String = client
                .query_one("SELECT current_setting('safeguard.tenant_id')", &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0);
            if !leftover.is_empty() {
                return Err("a session-level tenant survived".into());
            }
        }
    }
    tally.requests.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let mut config = tokio_postgres::Config::new();
    config
        .host(std::env::var("PGHOST").expect("PGHOST (socket directory)"))
        .port(std::env::var("PGPORT").expect("PGPORT").parse().expect("numeric PGPORT"))
        .dbname(std::env::var("PGDATABASE").expect("PGDATABASE"))
        .user(std::env::var("POOL_TEST_USER").expect("POOL_TEST_USER"));
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager).max_size(POOL_SIZE).build().expect("pool");
    let tally = Arc::new(Tally::default());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut handles = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let (pool, tally, permit) = (pool.clone(), tally.clone(), semaphore.clone().acquire_owned().await);
        let (kind, t) = {
            let mut rng = rand::rng();
            (rng.random_range(0..10u32), rng.random_range(1..=TENANTS))
        };
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = request(&pool, kind, t, &tally).await {
                eprintln!("request kind {kind} for tenant {t} failed: {e}");
                tally.unexpected_errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for handle in handles {
        handle.await.expect("request task panicked");
    }
    let status = pool.status();
    let (requests, rows, foreign, wrong, errors) = (
        tally.requests.load(Ordering::Relaxed),
        tally.rows_checked.load(Ordering::Relaxed),
        tally.foreign_rows.load(Ordering::Relaxed),
        tally.wrong_counts.load(Ordering::Relaxed),
        tally.unexpected_errors.load(Ordering::Relaxed),
    );
    println!(
        "pool test: {requests} requests over {} pooled connections, {rows} rows checked, \
         {foreign} rows of another tenant, {wrong} wrong row counts, {errors} unexpected errors; \
         session-level SETs refused: {}, discarded as placeholders: {}",
        status.size,
        tally.refused_sets.load(Ordering::Relaxed),
        tally.placeholder_sets.load(Ordering::Relaxed),
    );
    if requests != REQUESTS as u64 || rows == 0 || foreign != 0 || wrong != 0 || errors != 0 {
        eprintln!("pool test FAILED");
        std::process::exit(1);
    }
    let mut client = pool.get().await.expect("pooled connection");
    match encryption::round_trips(&mut client, tenant(1)).await {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
    match ulid_params::comparisons(&client).await {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
