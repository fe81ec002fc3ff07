//! The booking module's tables (see `migrations/booking` for the column comments).

pub mod booking {
    use sea_orm::entity::prelude::*;

    use crate::api::BookingStatus;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "bookings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub showtime_id: Uuid,
        pub status: BookingStatus,
        pub amount_cents: i64,
        pub currency: String,
        pub starts_at: ChronoDateTimeUtc,
        pub created_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub charging_payment_id: Option<Uuid>,
        pub charging_since: Option<ChronoDateTimeUtc>,
        pub movie_title: Option<String>,
        pub theater_name: Option<String>,
        pub theater_location: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod booking_seat {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "booking_seats")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub booking_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seat_id: Uuid,
        pub row_label: String,
        pub number: i32,
        pub price_cents: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod seat_claim {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "seat_claims")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub showtime_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seat_id: Uuid,
        pub booking_id: Uuid,
        pub confirmed: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod hold_lock {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "hold_locks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The state columns hold the names the API shows (as they did when they were plain text),
/// so rows written before the enums read back unchanged.
#[cfg(test)]
mod tests {
    use crate::api::BookingStatus;

    #[test]
    fn state_columns_store_the_wire_names() {
        platform::db::assert_stored_as_on_the_wire::<BookingStatus>();
    }
}
