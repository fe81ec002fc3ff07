//! Amounts of money as whole minor units of their currency (cents for USD, EUR): never a
//! float, so sums and comparisons are exact. The currency travels beside the amount (each DTO
//! has its `currency`); a [`Money`] alone does not know it.
//!
//! On the wire an amount is the bare integer (`"amount_cents": 2500`), as before the type
//! existed. The tables keep plain `BIGINT` columns; services convert at the row boundary with
//! [`Money::from_cents`] and [`Money::cents`], so the type needs no database mapping.

use serde::{Deserialize, Serialize};

/// An amount of money in whole minor units of its currency (cents for USD or EUR).
// (The doc line above is the OpenAPI description.) Arithmetic is checked: an overflow is
// `None`, never a wrapped price.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64, format = Int64)]
pub struct Money(i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    #[must_use]
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// The sum of `amounts`; `None` if it overflows.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts.into_iter().try_fold(Money::ZERO, Money::checked_add)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_amount_is_a_bare_integer_on_the_wire() {
        #[derive(Serialize, Deserialize)]
        struct Priced {
            price_cents: Money,
        }
        let json = serde_json::to_string(&Priced { price_cents: Money::from_cents(1250) }).unwrap();
        assert_eq!(json, r#"{"price_cents":1250}"#);
        let back: Priced = serde_json::from_str(r#"{"price_cents":-7}"#).unwrap();
        assert_eq!(back.price_cents.cents(), -7);
        assert!(serde_json::from_str::<Priced>(r#"{"price_cents":12.5}"#).is_err());
    }

    #[test]
    fn arithmetic_is_exact_and_refuses_to_overflow() {
        let seat = Money::from_cents(1299);
        assert_eq!(Money::checked_sum([seat, seat, Money::from_cents(2)]), Some(Money::from_cents(2600)));
        assert_eq!(Money::checked_sum([]), Some(Money::ZERO));
        assert_eq!(Money::from_cents(i64::MAX).checked_add(Money::from_cents(1)), None);
        assert_eq!(Money::checked_sum([Money::from_cents(i64::MAX), seat]), None);
    }

    #[test]
    fn its_schema_is_an_integer() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Money::schema()).unwrap();
        assert_eq!(schema["type"], "integer", "{schema}");
        assert_eq!(schema["format"], "int64", "{schema}");
    }
}
