//! A throwaway PostgreSQL: create, insert, select.

use sqlx::Row;
use tether_e2e::{Postgres, TestDir};

#[tokio::test]
async fn postgres_round_trip() {
    let dir = TestDir::new("pg").expect("test dir");
    let pg = Postgres::start(&dir).await.expect("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg.url())
        .await
        .expect("connect");
    sqlx::query("CREATE TABLE sessions (id TEXT PRIMARY KEY, n INT NOT NULL)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO sessions (id, n) VALUES ($1, $2)")
        .bind("s1")
        .bind(42)
        .execute(&pool)
        .await
        .expect("insert");
    let row = sqlx::query("SELECT n FROM sessions WHERE id = $1")
        .bind("s1")
        .fetch_one(&pool)
        .await
        .expect("select");
    assert_eq!(row.get::<i32, _>("n"), 42);
    pool.close().await;
}
