//! The notification module's tables (see `migrations/notification` for the column comments).

pub mod notification {
    use sea_orm::entity::prelude::*;

    use crate::api::{Channel, DeliveryStatus, NotificationKind};

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub event_id: Uuid,
        pub kind: NotificationKind,
        pub channel: Channel,
        pub payload: String,
        pub recipient: Option<String>,
        pub subject: Option<String>,
        pub body_text: Option<String>,
        pub body_html: Option<String>,
        pub status: DeliveryStatus,
        pub attempts: i32,
        pub last_error: Option<String>,
        pub next_attempt_at: ChronoDateTimeUtc,
        pub created_at: ChronoDateTimeUtc,
        pub sent_at: Option<ChronoDateTimeUtc>,
        /// The trace the notification's send continues (`platform::trace`).
        pub traceparent: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod booking_facts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "booking_facts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub booking_id: Uuid,
        pub showtime_id: Option<Uuid>,
        pub seat_ids: Option<String>,
        pub amount_cents: Option<i64>,
        pub updated_at: ChronoDateTimeUtc,
        pub ticket: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The columns hold the names the API shows and the template files use (as they did when they
/// were plain text), so rows written before the enums read back unchanged.
#[cfg(test)]
mod tests {
    use sea_orm::ActiveEnum;

    use crate::api::{Channel, DeliveryStatus, NotificationKind};

    #[test]
    fn state_columns_store_the_wire_names() {
        platform::db::assert_stored_as_on_the_wire::<NotificationKind>();
        platform::db::assert_stored_as_on_the_wire::<Channel>();
        platform::db::assert_stored_as_on_the_wire::<DeliveryStatus>();
        // The stored names are the wire's, not the variants' (snake_case).
        assert_eq!(NotificationKind::BookingCreated.to_value(), "booking_created");
    }
}
