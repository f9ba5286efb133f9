//! Listings come from central a page at a time (`limit`, `offset`); `--all` walks every page.

use std::future::Future;

use anyhow::Result;
use slicelab_client::Paging;
use slicelab_model::Page;

use crate::args::ListArgs;

/// The page `--limit`/`--offset` name, or with `--all` every page joined into one.
pub(crate) async fn fetch<T, F, Fut>(args: &ListArgs, mut get: F) -> Result<Page<T>>
where
    F: FnMut(Paging) -> Fut,
    Fut: Future<Output = slicelab_client::Result<Page<T>>>,
{
    if !args.all {
        return Ok(get(Paging {
            limit: args.limit,
            offset: args.offset,
        })
        .await?);
    }
    let mut items = Vec::new();
    let mut total;
    loop {
        let page = get(Paging {
            limit: Some(1000),
            offset: Some(items.len() as i64),
        })
        .await?;
        total = page.total;
        let n = page.items.len();
        items.extend(page.items);
        if n == 0 || items.len() as i64 >= total {
            break;
        }
    }
    let limit = items.len() as i64;
    Ok(Page {
        items,
        total,
        limit,
        offset: 0,
    })
}
