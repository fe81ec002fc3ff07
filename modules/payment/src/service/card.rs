//! Card fields as a customer sends them, checked (Luhn, expiry, CVC) into a [`Card`] whose
//! `Debug` shows only the brand and the last four digits. The full number lives only in
//! memory, for the gateway.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use platform::validation::FieldErrors;

use crate::api::PayRequest;

pub struct Card {
    number: String,
    pub brand: &'static str,
    pub last4: String,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Card({} ending {})", self.brand, self.last4)
    }
}

impl Card {
    /// Checks the card fields of `request` as of `today`.
    ///
    /// # Errors
    /// Every malformed field (`card_number`, `card_expiry`, `card_cvc`), by name; the messages
    /// never repeat the values.
    pub fn parse(request: &PayRequest, today: NaiveDate) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let number: String = request.card_number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            errors.add("card_number", "must be 12 to 19 digits");
        } else if !luhn_valid(&number) {
            errors.add("card_number", "is not a valid card number (checksum)");
        }
        match parse_expiry(&request.card_expiry) {
            None => errors.add("card_expiry", "must be MM/YY"),
            Some((year, month)) if (year, month) < (today.year(), today.month()) => {
                errors.add("card_expiry", "the card has expired");
            }
            Some(_) => {}
        }
        let cvc = request.card_cvc.as_bytes();
        if !(3..=4).contains(&cvc.len()) || !cvc.iter().all(u8::is_ascii_digit) {
            errors.add("card_cvc", "must be 3 or 4 digits");
        }
        errors.into_result()?;
        let last4 = number[number.len() - 4..].to_owned();
        Ok(Self { brand: brand(&number), last4, number })
    }

    /// The full number, for the gateway only.
    pub fn number(&self) -> &str {
        &self.number
    }
}

/// The Luhn checksum of a string of ASCII digits.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `MM/YY` → (year, month); a card is valid through the last day of its month.
fn parse_expiry(expiry: &str) -> Option<(i32, u32)> {
    let (mm, yy) = expiry.trim().split_once('/')?;
    if mm.len() != 2 || yy.len() != 2 {
        return None;
    }
    let month: u32 = mm.parse().ok()?;
    let year: i32 = yy.parse().ok()?;
    (1..=12).contains(&month).then_some((2000 + year, month))
}

fn brand(number: &str) -> &'static str {
    let prefix = |n: usize| number.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
    match (prefix(1), prefix(2), prefix(4)) {
        (4, _, _) => "visa",
        (_, 51..=55, _) | (_, _, 2221..=2720) => "mastercard",
        (_, 34 | 37, _) => "amex",
        (_, 65, _) | (_, _, 6011) => "discover",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(number: &str, expiry: &str, cvc: &str) -> PayRequest {
        PayRequest {
            booking_id: booking::api::BookingId(uuid::Uuid::nil()),
            card_number: number.to_owned(),
            card_expiry: expiry.to_owned(),
            card_cvc: cvc.to_owned(),
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
    }

    #[test]
    fn known_test_cards_are_valid_and_keep_only_brand_and_last_four() {
        for (number, brand) in [
            ("4242424242424242", "visa"),
            ("4000 0000 0000 0002", "visa"),
            ("5555-5555-5555-4444", "mastercard"),
            ("2223003122003222", "mastercard"),
            ("378282246310005", "amex"),
            ("6011111111111117", "discover"),
        ] {
            let card = Card::parse(&request(number, "12/30", "123"), today()).unwrap();
            assert_eq!(card.brand, brand, "{number}");
            assert_eq!(card.last4, number.replace([' ', '-'], "")[number.replace([' ', '-'], "").len() - 4..]);
            assert!(!format!("{card:?}").contains(card.number()));
        }
    }

    #[test]
    fn a_luhn_invalid_number_is_refused() {
        let errors = Card::parse(&request("4242424242424241", "12/30", "123"), today()).unwrap_err();
        assert_eq!(errors.as_slice()[0].field, "card_number");
    }

    #[test]
    fn every_malformed_field_is_named_without_its_value() {
        let errors = Card::parse(&request("42x2", "13/30", "12"), today()).unwrap_err();
        let fields: Vec<&str> = errors.as_slice().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card_number", "card_expiry", "card_cvc"]);
        assert!(!errors.to_string().contains("42x2"));
    }

    #[test]
    fn a_card_is_valid_through_its_expiry_month() {
        assert!(Card::parse(&request("4242424242424242", "11/26", "123"), today()).is_ok());
        let errors = Card::parse(&request("4242424242424242", "10/26", "123"), today()).unwrap_err();
        assert_eq!(errors.as_slice()[0].field, "card_expiry");
        for bad in ["1/30", "00/30", "12-30", "12/2030", ""] {
            assert!(Card::parse(&request("4242424242424242", bad, "123"), today()).is_err(), "{bad}");
        }
    }
}
