//! The payment module's tables (see `migrations/payment` for the column comments).

pub mod payment {
    use sea_orm::entity::prelude::*;

    use crate::api::PaymentStatus;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub booking_id: Uuid,
        pub amount_cents: i64,
        pub currency: String,
        pub status: PaymentStatus,
        pub failure_reason: Option<String>,
        pub card_brand: String,
        pub card_last4: String,
        pub refund_due: bool,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod transaction {
    use sea_orm::entity::prelude::*;

    use crate::api::{TransactionKind, TransactionStatus};

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_transactions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub payment_id: Uuid,
        pub kind: TransactionKind,
        pub amount_cents: i64,
        pub status: TransactionStatus,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod idempotency_key {
    use sea_orm::entity::prelude::*;

    /// Whether a key's request still runs (or died, leaving its lease to run out) or is done,
    /// its answer saved.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
    pub enum KeyState {
        Running,
        Done,
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub fingerprint: String,
        pub payment_id: Uuid,
        pub state: KeyState,
        pub attempt: i32,
        pub lease_until: ChronoDateTimeUtc,
        /// The saved [`Answer`](super::super::idempotency::Answer) as JSON (`done` only).
        pub answer: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub booking_id: Option<Uuid>,
        pub amount_cents: Option<i64>,
        pub currency: Option<String>,
        pub card_brand: Option<String>,
        pub card_last4: Option<String>,
        pub charging_since: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ledger {
    use sea_orm::entity::prelude::*;

    /// Where a booking stands for payment: nobody charging it, one charge under way (its
    /// payment and lease beside it), paid, or closed (cancelled or expired: no charge may
    /// start or complete).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
    pub enum LedgerState {
        Free,
        Charging,
        Paid,
        Closed,
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "booking_ledger")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub booking_id: Uuid,
        pub state: LedgerState,
        pub payment_id: Option<Uuid>,
        pub lease_until: Option<ChronoDateTimeUtc>,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attempt_window {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_attempt_windows")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        pub window_start: ChronoDateTimeUtc,
        pub attempts: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod gateway_charge {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
    pub enum Outcome {
        Approved,
        Declined,
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "simulated_gateway_charges")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub reference: Uuid,
        pub outcome: Outcome,
        pub decline_reason: Option<String>,
        pub amount_cents: i64,
        pub currency: String,
        pub refunded: bool,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The state columns hold the names the API shows (as they did when they were plain text),
/// so rows written before the enums read back unchanged.
#[cfg(test)]
mod tests {
    use crate::api::{PaymentStatus, TransactionKind, TransactionStatus};

    #[test]
    fn state_columns_store_the_wire_names() {
        platform::db::assert_stored_as_on_the_wire::<PaymentStatus>();
        platform::db::assert_stored_as_on_the_wire::<TransactionKind>();
        platform::db::assert_stored_as_on_the_wire::<TransactionStatus>();
    }
}
