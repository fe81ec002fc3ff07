use sea_orm_migration::prelude::*;

/// The title search's index: each movie's lowercased title as the set of its grams (the text of
/// up to three characters that starts at each character, as UTF-8 bytes), so that `?q=` reads
/// the grams it needs instead of every title. Derived from `movies.title` by the movie service,
/// which also fills it for movies created before this table.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MovieTitleGrams {
    Table,
    /// Bytes, not text: compared byte by byte on every backend, so a range of grams is a range
    /// of prefixes whatever the database's collation.
    Gram,
    MovieId,
}

#[derive(DeriveIden)]
enum Movies {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MovieTitleGrams::Table)
                    .col(ColumnDef::new(MovieTitleGrams::Gram).var_binary(16).not_null())
                    .col(ColumnDef::new(MovieTitleGrams::MovieId).uuid().not_null())
                    .primary_key(Index::create().col(MovieTitleGrams::Gram).col(MovieTitleGrams::MovieId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("movie_title_grams_movie_fk")
                            .from(MovieTitleGrams::Table, MovieTitleGrams::MovieId)
                            .to(Movies::Table, Movies::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("movie_title_grams_movie_idx")
                    .table(MovieTitleGrams::Table)
                    .col(MovieTitleGrams::MovieId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MovieTitleGrams::Table).to_owned()).await
    }
}
