//! The title search (`?q=`) without reading every title: each movie's lowercased title is kept
//! as its grams, the text of up to three characters that starts at each of its characters
//! ("Heat" → `hea`, `eat`, `at`, `t`), in `movie_title_grams` (bytes, compared byte by byte).
//! A title contains `q` only if it has every three-character gram of `q`; a `q` of one or two
//! characters is the start of one of the title's grams, a range of the index. Either way the
//! grams only narrow the candidates: the caller still checks the title itself.

use std::collections::BTreeSet;

use sea_orm::sea_query::{Expr, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExprTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::entity::{movie, title_gram};

/// At most this many of `q`'s grams are looked up: each narrows the candidates less than the
/// one before, and costs one more range of the index.
const MAX_LOOKUPS: usize = 8;
/// How many gram rows one insert carries (two bind parameters each: far under SQLite's limit).
const ROWS_PER_INSERT: usize = 1_000;
/// No UTF-8 text holds this byte, so `prefix ++ [0xFF]` is past every text that starts with
/// `prefix`.
const PAST_EVERY_CHARACTER: u8 = 0xFF;

/// The distinct grams of `text`, lowercased.
fn grams(text: &str) -> BTreeSet<Vec<u8>> {
    let chars: Vec<char> = text.to_lowercase().chars().collect();
    (0..chars.len()).map(|i| chars[i..chars.len().min(i + 3)].iter().collect::<String>().into_bytes()).collect()
}

/// A condition on `movies`: its title may contain `q` (already trimmed and not empty).
pub(super) fn may_contain(backend: DbBackend, q: &str) -> Expr {
    let ids = candidates(q);
    match backend {
        // The candidates gathered first, then read by primary key. With `id IN (…)` the planner,
        // which cannot tell how few movies a gram matches, may read every title instead.
        DbBackend::Postgres => Expr::cust_with_exprs(
            "$1 = ANY(ARRAY($2))",
            [Expr::col((movie::Entity, movie::Column::Id)), Expr::SubQuery(None, Box::new(ids.into()))],
        ),
        _ => movie::Column::Id.in_subquery(ids),
    }
}

/// The ids of the movies whose title may contain `q`.
fn candidates(q: &str) -> SelectStatement {
    let q: Vec<char> = q.to_lowercase().chars().collect();
    let mut select = Query::select();
    select.column(title_gram::Column::MovieId).from(title_gram::Entity);
    if q.len() < 3 {
        let from = q.iter().collect::<String>().into_bytes();
        let mut to = from.clone();
        to.push(PAST_EVERY_CHARACTER);
        select.and_where(title_gram::Column::Gram.gte(from)).and_where(title_gram::Column::Gram.lt(to)).distinct();
    } else {
        let wanted: BTreeSet<Vec<u8>> = q.windows(3).map(|w| w.iter().collect::<String>().into_bytes()).collect();
        // A long query looks some of its grams up; the title check does the rest.
        let step = wanted.len().div_ceil(MAX_LOOKUPS);
        let wanted: Vec<Vec<u8>> = wanted.into_iter().step_by(step).collect();
        let count = wanted.len() as i64;
        select
            .and_where(title_gram::Column::Gram.is_in(wanted))
            .group_by_col(title_gram::Column::MovieId)
            .and_having(Expr::col(title_gram::Column::Gram).count().eq(count));
    }
    select.to_owned()
}

/// Writes the grams of a new movie's title (in the caller's transaction).
pub(super) async fn index(db: &impl ConnectionTrait, movie_id: Uuid, title: &str) -> Result<(), DbErr> {
    insert(db, grams(title).into_iter().map(|gram| (gram, movie_id)).collect()).await
}

/// Writes the grams of a movie's new title in place of the old one's.
pub(super) async fn reindex(db: &impl ConnectionTrait, movie_id: Uuid, title: &str) -> Result<(), DbErr> {
    forget(db, movie_id).await?;
    index(db, movie_id, title).await
}

/// Removes a movie's grams: a deleted movie is no longer found.
pub(super) async fn forget(db: &impl ConnectionTrait, movie_id: Uuid) -> Result<(), DbErr> {
    title_gram::Entity::delete_many().filter(title_gram::Column::MovieId.eq(movie_id)).exec(db).await?;
    Ok(())
}

/// Indexes the titles of the movies that have no grams: those created before the index was.
/// Replicas starting together may both do it: a gram already written is left as it is.
pub(super) async fn index_missing(db: &impl ConnectionTrait) -> Result<usize, DbErr> {
    let missing: Vec<(Uuid, String)> = movie::Entity::find()
        .select_only()
        .column(movie::Column::Id)
        .column(movie::Column::Title)
        .filter(movie::Column::DeletedAt.is_null())
        .filter(
            Expr::exists(
                Query::select()
                    .expr(Expr::value(1))
                    .from(title_gram::Entity)
                    .and_where(
                        Expr::col((title_gram::Entity, title_gram::Column::MovieId))
                            .equals((movie::Entity, movie::Column::Id)),
                    )
                    .to_owned(),
            )
            .not(),
        )
        .into_tuple()
        .all(db)
        .await?;
    let rows = missing.iter().flat_map(|(id, title)| grams(title).into_iter().map(|gram| (gram, *id))).collect();
    insert(db, rows).await?;
    Ok(missing.len())
}

async fn insert(db: &impl ConnectionTrait, rows: Vec<(Vec<u8>, Uuid)>) -> Result<(), DbErr> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let models = chunk.iter().map(|(gram, movie_id)| title_gram::ActiveModel {
            gram: sea_orm::ActiveValue::Set(gram.clone()),
            movie_id: sea_orm::ActiveValue::Set(*movie_id),
        });
        title_gram::Entity::insert_many(models)
            .on_conflict_do_nothing_on([title_gram::Column::Gram, title_gram::Column::MovieId])
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::grams;

    fn texts(title: &str) -> Vec<String> {
        grams(title).into_iter().map(|g| String::from_utf8(g).unwrap()).collect()
    }

    #[test]
    fn a_title_is_its_lowercased_grams_of_up_to_three_characters() {
        assert_eq!(texts("Heat"), ["at", "eat", "hea", "t"]);
        assert_eq!(texts("Up"), ["p", "up"]);
        // Characters, not bytes; repeats once.
        assert_eq!(texts("Ééé"), ["é", "éé", "ééé"]);
    }
}
