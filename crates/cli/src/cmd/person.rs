//! `slicelab person`: add, list, show, change and delete persons.

use anyhow::Result;
use slicelab_client::{Client, PersonFilter};
use slicelab_model::{PersonCreate, PersonUpdate};

use super::flags::nothing_to_change;
use crate::args::{ListArgs, Output, PersonCmd};
use crate::output::{emit, emit_page};
use crate::paging::fetch;
use crate::password;
use crate::render;
use crate::session::session;

pub(crate) async fn person(out: Output, c: PersonCmd) -> Result<()> {
    let s = session()?;
    let c_ = &s.client;
    match c {
        PersonCmd::Add {
            email,
            first_name,
            last_name,
            roles,
            sites,
            password_stdin,
        } => {
            let body = PersonCreate {
                email,
                first_name,
                last_name,
                password: new_password(password_stdin)?,
                roles,
                sites,
            };
            emit(out, &c_.create_person(&body).await?, render::person)
        }
        PersonCmd::List {
            site,
            role,
            email,
            list,
        } => {
            let f = PersonFilter {
                site,
                role,
                email,
                ..Default::default()
            };
            list_persons(out, c_, f, &list).await
        }
        PersonCmd::Show { person } => emit(out, &c_.person(&person).await?, render::person),
        PersonCmd::Update {
            person,
            first_name,
            last_name,
            roles,
            sites,
            password_stdin,
            enable,
        } => {
            let body = PersonUpdate {
                first_name,
                last_name,
                password: new_password(password_stdin)?,
                roles: (!roles.is_empty()).then_some(roles),
                sites: (!sites.is_empty()).then_some(sites),
                enabled: enable.value(),
            };
            update_person(out, c_, &person, &body).await
        }
        PersonCmd::Delete { person } => {
            c_.delete_person(&person).await?;
            eprintln!("Deleted person {person}.");
            Ok(())
        }
    }
}

/// The password `--password-stdin` gives, if it was given.
fn new_password(password_stdin: bool) -> Result<Option<String>> {
    if password_stdin {
        Ok(Some(password::read_stdin_line()?))
    } else {
        Ok(None)
    }
}

/// `person list`: `filter` names the persons, `list` which part of the listing to show.
async fn list_persons(
    out: Output,
    c_: &Client,
    filter: PersonFilter,
    list: &ListArgs,
) -> Result<()> {
    let page = fetch(list, |paging| {
        let f = PersonFilter {
            paging,
            ..filter.clone()
        };
        async move { c_.persons(&f).await }
    })
    .await?;
    emit_page(out, &page, render::persons)
}

async fn update_person(out: Output, c_: &Client, person: &str, body: &PersonUpdate) -> Result<()> {
    if body.first_name.is_none()
        && body.last_name.is_none()
        && body.password.is_none()
        && body.roles.is_none()
        && body.sites.is_none()
        && body.enabled.is_none()
    {
        return Err(nothing_to_change(
            "--first, --last, --role, --site, --password-stdin, --enable, --disable",
        ));
    }
    emit(out, &c_.update_person(person, body).await?, render::person)
}
