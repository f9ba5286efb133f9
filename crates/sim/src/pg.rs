//! Fresh PostgreSQL databases for the runs that compare one central with replicas: each run gets
//! an empty database of its own on the server the user named, dropped afterwards.

use sqlx::{Connection, PgConnection};

use crate::SimError;

/// A database made for one run.
pub(crate) struct TempDb {
    server: String,
    name: String,
    /// Its URL, for the centrals.
    pub(crate) url: String,
}

impl TempDb {
    /// Creates database `name` through `server` (the URL of any database there, as a role that
    /// may create databases).
    pub(crate) async fn create(server: &str, name: &str) -> Result<TempDb, SimError> {
        let mut c = connect(server).await?;
        for q in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&q).execute(&mut c).await.map_err(|e| {
                SimError::Db(format!(
                    "{q}: {e} (the comparison needs a role that may create databases)"
                ))
            })?;
        }
        let _ = c.close().await;
        Ok(TempDb {
            server: server.to_string(),
            name: name.to_string(),
            url: with_database(server, name),
        })
    }

    /// Drops the database (and whatever connections are left on it).
    pub(crate) async fn drop_db(self) {
        if let Ok(mut c) = connect(&self.server).await {
            let q = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = sqlx::query(&q).execute(&mut c).await {
                tracing::warn!(error = %e, database = %self.name, "cannot drop the simulation's database");
            }
            let _ = c.close().await;
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, SimError> {
    PgConnection::connect(url)
        .await
        .map_err(|e| SimError::Db(format!("cannot connect to PostgreSQL: {e}")))
}

/// `url` naming database `db` instead of its own (query parameters kept).
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let authority_at = main.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match main[authority_at..].find('/') {
        Some(slash) => &main[..authority_at + slash],
        None => main,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Whether `url` names a PostgreSQL database.
pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres", "sim_1"),
            "postgres://u:p@127.0.0.1:5432/sim_1"
        );
        assert_eq!(
            with_database("postgresql://u@db/x?sslmode=require", "sim_1"),
            "postgresql://u@db/sim_1?sslmode=require"
        );
        assert_eq!(with_database("postgres://u@db", "s"), "postgres://u@db/s");
        assert!(is_postgres("postgres://x") && !is_postgres("sqlite://x"));
    }
}
