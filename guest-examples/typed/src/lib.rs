//! Typed exports with `#[export]`: structs, strings, vectors, options and guest errors.

use membrane_guest::{Error, export};
use serde::{Deserialize, Serialize};

/// A line of an order.
#[derive(Serialize, Deserialize)]
pub struct Item {
    /// Product name.
    pub name: String,
    /// Price of one, in cents.
    pub unit_cents: u64,
    /// How many.
    pub quantity: u32,
}

/// An order to total.
#[derive(Serialize, Deserialize)]
pub struct Order {
    /// Order id.
    pub id: u64,
    /// Its lines.
    pub items: Vec<Item>,
    /// A discount in percent, if any.
    pub discount_percent: Option<u8>,
}

/// The total of an order.
#[derive(Serialize, Deserialize)]
pub struct Receipt {
    /// The order id.
    pub id: u64,
    /// Total in cents after the discount.
    pub total_cents: u64,
    /// The names of the items, sorted.
    pub names: Vec<String>,
}

/// Application error code: the order has no items.
pub const EMPTY_ORDER: u32 = 1001;
/// Application error code: arithmetic overflow.
pub const OVERFLOW: u32 = 1002;
/// Application error code: division by zero.
pub const DIVIDE_BY_ZERO: u32 = 1003;

/// Totals an order; fails on an empty order, an invalid discount or overflow.
#[export]
pub fn total(order: Order) -> Result<Receipt, Error> {
    if order.items.is_empty() {
        return Err(Error::new(
            EMPTY_ORDER,
            format!("order {} has no items", order.id),
        ));
    }
    let mut total: u64 = 0;
    for item in &order.items {
        let line = item
            .unit_cents
            .checked_mul(u64::from(item.quantity))
            .ok_or_else(|| Error::new(OVERFLOW, format!("line {} overflows", item.name)))?;
        total = total
            .checked_add(line)
            .ok_or_else(|| Error::new(OVERFLOW, "total overflows"))?;
    }
    if let Some(discount) = order.discount_percent {
        if discount > 100 {
            return Err(format!("discount of {discount}% is more than 100%").into());
        }
        total -= total * u64::from(discount) / 100;
    }
    let mut names: Vec<String> = order.items.into_iter().map(|i| i.name).collect();
    names.sort();
    Ok(Receipt {
        id: order.id,
        total_cents: total,
        names,
    })
}

/// Upper-cases a string.
#[export]
pub fn shout(text: String) -> Result<String, Error> {
    Ok(text.to_uppercase())
}

/// Sorts a vector and removes duplicates.
#[export]
pub fn sort_unique(mut values: Vec<i64>) -> Result<Vec<i64>, Error> {
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

/// Integer division; fails on division by zero.
#[export]
pub fn divide(input: (i64, i64)) -> Result<i64, Error> {
    let (a, b) = input;
    a.checked_div(b)
        .ok_or_else(|| Error::new(DIVIDE_BY_ZERO, format!("cannot divide {a} by {b}")))
}

/// Takes no input; returns a fixed greeting.
#[export]
pub fn hello() -> Result<String, Error> {
    Ok("hello from membrane".to_string())
}
