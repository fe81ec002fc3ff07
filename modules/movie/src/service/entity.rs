//! The movie module's tables (see `migrations/movie` for the column comments).

pub mod movie {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "movies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub title: String,
        pub description: String,
        pub duration_minutes: i32,
        pub genre: String,
        pub release_date: Date,
        pub rating: Option<String>,
        pub poster_url: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub deleted_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod theater {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "theaters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
        pub location: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod seat {
    use sea_orm::entity::prelude::*;

    use crate::api::SeatType;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "seats")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub theater_id: Uuid,
        pub row_label: String,
        pub number: i32,
        pub position: i32,
        pub seat_type: SeatType,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod showtime {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "showtimes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub movie_id: Uuid,
        pub theater_id: Uuid,
        pub start_time: ChronoDateTimeUtc,
        pub end_time: ChronoDateTimeUtc,
        pub price_cents: i64,
        pub currency: String,
        pub seats_total: i32,
        pub seats_available: i32,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod title_gram {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "movie_title_grams")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub gram: Vec<u8>,
        #[sea_orm(primary_key, auto_increment = false)]
        pub movie_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The state columns hold the names the API shows (as they did when they were plain text),
/// so rows written before the enums read back unchanged.
#[cfg(test)]
mod tests {
    use crate::api::SeatType;

    #[test]
    fn state_columns_store_the_wire_names() {
        platform::db::assert_stored_as_on_the_wire::<SeatType>();
    }
}
