//! Persons (with their roles and sites) and their SSH keys: create, look up, list with
//! visibility rules, update, delete.

use serde_json::json;
use slicelab_model::{Key, Person, PersonCreate, PersonUpdate, Role};

use crate::events::NewEvent;
use crate::rows::{roles_from_text, roles_to_text, KeyRow, PersonRow, PERSON_COLS};
use crate::{conflict_or, Arg, Filter, Paging, Result, Store, StoreError, WriteTx};

/// A person with what only central may see: the password hash and site ids.
#[derive(Debug, Clone)]
pub struct PersonRecord {
    pub person: Person,
    pub password_hash: Option<String>,
    pub site_ids: Vec<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct PersonFilter {
    pub site_id: Option<i64>,
    pub role: Option<Role>,
    pub email: Option<String>,
    /// Non-admins see only persons sharing one of these sites, and themselves.
    pub visible_to: Option<(Vec<i64>, i64)>,
}

impl WriteTx<'_> {
    async fn set_person_sites(&mut self, person_id: i64, site_ids: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM person_sites WHERE person_id = $1")
            .bind(person_id)
            .execute(&mut *self.tx)
            .await?;
        for s in site_ids {
            sqlx::query("INSERT INTO person_sites (person_id, site_id) VALUES ($1, $2)")
                .bind(person_id)
                .bind(*s)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    async fn person_records(&self, rows: Vec<PersonRow>) -> Result<Vec<PersonRecord>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let sites: Vec<(i64, String)> = sqlx::query_as(
                "SELECT s.id, s.login_base FROM person_sites ps JOIN sites s ON s.id = ps.site_id \
                 WHERE ps.person_id = $1 ORDER BY s.login_base",
            )
            .bind(r.id)
            .fetch_all(self.pool())
            .await?;
            out.push(PersonRecord {
                site_ids: sites.iter().map(|(id, _)| *id).collect(),
                password_hash: r.password_hash,
                person: Person {
                    id: r.id,
                    email: r.email,
                    first_name: r.first_name,
                    last_name: r.last_name,
                    roles: roles_from_text(&r.roles),
                    sites: sites.into_iter().map(|(_, l)| l).collect(),
                    enabled: r.enabled != 0,
                    created: r.created,
                },
            });
        }
        Ok(out)
    }

    pub async fn count_persons(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM persons")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn create_person(
        &self,
        actor: &str,
        now: i64,
        c: &PersonCreate,
        password_hash: Option<String>,
        site_ids: &[i64],
    ) -> Result<Person> {
        let mut w = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO persons (email, first_name, last_name, password_hash, roles, enabled, created) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) RETURNING id",
        )
        .bind(&c.email)
        .bind(&c.first_name)
        .bind(&c.last_name)
        .bind(password_hash)
        .bind(roles_to_text(&c.roles))
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, &format!("a person with email {:?} already exists", c.email), ""))?;
        w.set_person_sites(id, site_ids).await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "person.create",
                object_type: "person",
                object_id: id,
                object_name: &c.email,
                site_id: site_ids.first().copied(),
                detail: json!({"roles": c.roles, "sites": c.sites}),
            },
        )
        .await?;
        w.commit().await?;
        Ok(self.person(&id.to_string()).await?.person)
    }

    /// A person by id or email.
    pub async fn person(&self, key: &str) -> Result<PersonRecord> {
        let row = self
            .by_id_or_name::<PersonRow>(
                &format!("SELECT {PERSON_COLS} FROM persons p"),
                "p.id",
                "p.email",
                key,
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("person {key:?}")))?;
        let mut v = self.person_records(vec![row]).await?;
        v.pop()
            .ok_or_else(|| StoreError::NotFound(format!("person {key:?}")))
    }

    pub async fn list_persons(&self, f: &PersonFilter, page: Paging) -> Result<(Vec<Person>, i64)> {
        let mut w = Filter::default();
        if let Some(s) = f.site_id {
            w.add(
                "EXISTS (SELECT 1 FROM person_sites ps WHERE ps.person_id = p.id AND ps.site_id = {})",
                Arg::I(s),
            );
        }
        if let Some(r) = f.role {
            // roles is a sorted comma list; match a whole element.
            w.add(
                "(',' || p.roles || ',') LIKE {}",
                Arg::S(format!("%,{},%", r.as_str())),
            );
        }
        if let Some(e) = &f.email {
            w.add("p.email = {}", Arg::S(e.clone()));
        }
        if let Some((sites, me)) = &f.visible_to {
            let mut alts = vec![("p.id = {}", Arg::I(*me))];
            alts.extend(sites.iter().map(|s| {
                (
                    "EXISTS (SELECT 1 FROM person_sites ps WHERE ps.person_id = p.id AND ps.site_id = {})",
                    Arg::I(*s),
                )
            }));
            w.any_of(alts);
        }
        let where_sql = w.where_sql();
        let total = w
            .bind_scalar(sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM persons p {where_sql}"
            )))
            .fetch_one(self.pool())
            .await?;
        let sql = format!(
            "SELECT {PERSON_COLS} FROM persons p {where_sql} ORDER BY p.email LIMIT {} OFFSET {}",
            page.limit, page.offset
        );
        let rows: Vec<PersonRow> = w.bind(sqlx::query_as(&sql)).fetch_all(self.pool()).await?;
        let recs = self.person_records(rows).await?;
        Ok((recs.into_iter().map(|r| r.person).collect(), total))
    }

    pub async fn update_person(
        &self,
        actor: &str,
        now: i64,
        p: &PersonRecord,
        u: &PersonUpdate,
        password_hash: Option<String>,
        site_ids: Option<&[i64]>,
    ) -> Result<Person> {
        let mut w = self.write().await?;
        let cur = &p.person;
        sqlx::query(
            "UPDATE persons SET first_name = $1, last_name = $2, password_hash = $3, roles = $4, enabled = $5 \
             WHERE id = $6",
        )
        .bind(u.first_name.as_deref().unwrap_or(&cur.first_name))
        .bind(u.last_name.as_deref().unwrap_or(&cur.last_name))
        .bind(password_hash.or_else(|| p.password_hash.clone()))
        .bind(roles_to_text(u.roles.as_deref().unwrap_or(&cur.roles)))
        .bind(i64::from(u.enabled.unwrap_or(cur.enabled)))
        .bind(cur.id)
        .execute(&mut *w.tx)
        .await?;
        if let Some(s) = site_ids {
            w.set_person_sites(cur.id, s).await?;
        }
        if u.enabled == Some(false) || u.password.is_some() {
            // Disabling an account or changing its password ends its sessions.
            sqlx::query("DELETE FROM tokens WHERE person_id = $1 AND kind = 'session'")
                .bind(cur.id)
                .execute(&mut *w.tx)
                .await?;
        }
        let mut detail = json!(u);
        if u.password.is_some() {
            detail["password"] = json!("(changed)");
        }
        w.event(
            now,
            NewEvent {
                actor,
                action: "person.update",
                object_type: "person",
                object_id: cur.id,
                object_name: &cur.email,
                site_id: p.site_ids.first().copied(),
                detail,
            },
        )
        .await?;
        w.commit().await?;
        Ok(self.person(&cur.id.to_string()).await?.person)
    }

    pub async fn delete_person(&self, actor: &str, now: i64, p: &PersonRecord) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM persons WHERE id = $1")
            .bind(p.person.id)
            .execute(&mut *w.tx)
            .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "person.delete",
                object_type: "person",
                object_id: p.person.id,
                object_name: &p.person.email,
                site_id: p.site_ids.first().copied(),
                detail: json!({}),
            },
        )
        .await?;
        w.commit().await
    }

    pub async fn add_key(&self, actor: &str, now: i64, p: &PersonRecord, key: &str) -> Result<Key> {
        let mut w = self.write().await?;
        let dup: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM keys WHERE person_id = $1 AND key = $2")
                .bind(p.person.id)
                .bind(key)
                .fetch_one(&mut *w.tx)
                .await?;
        if dup > 0 {
            return Err(StoreError::Conflict(format!(
                "{} already has this key",
                p.person.email
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO keys (person_id, key, created) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(p.person.id)
        .bind(key)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "key.create",
                object_type: "person",
                object_id: p.person.id,
                object_name: &p.person.email,
                site_id: p.site_ids.first().copied(),
                detail: json!({"key_id": id}),
            },
        )
        .await?;
        w.commit().await?;
        self.key(id).await
    }

    pub async fn key(&self, id: i64) -> Result<Key> {
        sqlx::query_as::<_, KeyRow>(
            "SELECT k.id, k.person_id, p.email AS person, k.key, k.created FROM keys k \
             JOIN persons p ON p.id = k.person_id WHERE k.id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .map(Into::into)
        .ok_or_else(|| StoreError::NotFound(format!("key {id}")))
    }

    pub async fn list_keys(&self, person_id: i64) -> Result<Vec<Key>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT k.id, k.person_id, p.email AS person, k.key, k.created FROM keys k \
             JOIN persons p ON p.id = k.person_id WHERE k.person_id = $1 ORDER BY k.id",
        )
        .bind(person_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn delete_key(&self, actor: &str, now: i64, key: &Key) -> Result<()> {
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM keys WHERE id = $1")
            .bind(key.id)
            .execute(&mut *w.tx)
            .await?;
        w.event(
            now,
            NewEvent {
                actor,
                action: "key.delete",
                object_type: "person",
                object_id: key.person_id,
                object_name: &key.person,
                site_id: None,
                detail: json!({"key_id": key.id}),
            },
        )
        .await?;
        w.commit().await
    }
}
