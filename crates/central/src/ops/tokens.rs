//! API tokens for scripts: a person lists, creates and revokes its own. Tokens change no node's
//! desired state: nothing to wake.

use slicelab_model::time::DAY;
use slicelab_model::{names, Actor, ApiToken, NewApiToken, TokenCreate};
use slicelab_store::{PersonRecord, TokenKind};

use crate::auth::{new_secret, secret_hash, PERSON_TOKEN_PREFIX};
use crate::ops::{person_id, OpError, OpResult};
use crate::state::AppState;

/// The acting person's own record.
async fn me(st: &AppState, actor: &Actor) -> OpResult<PersonRecord> {
    let id = person_id(actor)?;
    Ok(st.store.person(&id.to_string()).await?)
}

pub async fn list(st: &AppState, actor: &Actor) -> OpResult<Vec<ApiToken>> {
    Ok(st.store.list_tokens(person_id(actor)?).await?)
}

/// A new API token of the acting person; the secret is in the answer, once.
pub async fn create(st: &AppState, actor: &Actor, t: &TokenCreate) -> OpResult<NewApiToken> {
    let me = me(st, actor).await?;
    names::required_text("name", &t.name, 64)?;
    let days = t.days.unwrap_or(365);
    if !(1..=3650).contains(&days) {
        return Err(OpError::invalid(
            "days",
            format!("{days} is outside 1..=3650"),
        ));
    }
    let token = new_secret(PERSON_TOKEN_PREFIX);
    let now = crate::now();
    let info = st
        .store
        .create_token(
            &actor.label(),
            now,
            &me,
            TokenKind::Api,
            &t.name,
            &secret_hash(&token),
            now + days * DAY,
        )
        .await?;
    Ok(NewApiToken { token, info })
}

/// Revokes token `id` of the acting person (session or API token); `NotFound` if not theirs.
pub async fn delete(st: &AppState, actor: &Actor, id: i64) -> OpResult<()> {
    let me = me(st, actor).await?;
    st.store
        .delete_token(&actor.label(), crate::now(), &me, id)
        .await?;
    Ok(())
}
