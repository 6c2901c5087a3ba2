//! A component guest with every WIT value type (`wit/kitchen.wit`): identity functions
//! per type at world level and in the exported interface `demo:kitchen/types`, the
//! bench's `echo-bytes` and record-typed `double-order`. Built with wit-bindgen for
//! wasm32-unknown-unknown; `cargo xtask build-guests` makes the component.

/// The bindings wit-bindgen generates from `wit/kitchen.wit` (undocumented where the WIT is).
#[allow(missing_docs)]
mod bindings {
    wit_bindgen::generate!({
        world: "kitchen",
        path: "wit/kitchen.wit",
    });
}

use bindings::Guest;

use bindings::Order;
use bindings::exports::demo::kitchen::types::{
    Color, Everything, Guest as Types, Perms, Point, Shape,
};

/// The component: implements the world's exports and the `types` interface.
struct Kitchen;

impl Guest for Kitchen {
    fn echo_bool(v: bool) -> bool {
        v
    }
    fn echo_s8(v: i8) -> i8 {
        v
    }
    fn echo_s16(v: i16) -> i16 {
        v
    }
    fn echo_s32(v: i32) -> i32 {
        v
    }
    fn echo_s64(v: i64) -> i64 {
        v
    }
    fn echo_u8(v: u8) -> u8 {
        v
    }
    fn echo_u16(v: u16) -> u16 {
        v
    }
    fn echo_u32(v: u32) -> u32 {
        v
    }
    fn echo_u64(v: u64) -> u64 {
        v
    }
    fn echo_f32(v: f32) -> f32 {
        v
    }
    fn echo_f64(v: f64) -> f64 {
        v
    }
    fn echo_char(v: char) -> char {
        v
    }
    fn echo_string(v: String) -> String {
        v
    }
    fn echo_bytes(b: Vec<u8>) -> Vec<u8> {
        b
    }
    fn double_order(o: Order) -> Order {
        Order {
            qty: o.qty.wrapping_mul(2),
            sku: o.sku.to_uppercase(),
            ..o
        }
    }
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
    fn nothing() {}
}

impl Types for Kitchen {
    fn echo_point(p: Point) -> Point {
        p
    }
    fn echo_color(c: Color) -> Color {
        c
    }
    fn echo_perms(p: Perms) -> Perms {
        p
    }
    fn echo_shape(s: Shape) -> Shape {
        s
    }
    fn echo_everything(e: Everything) -> Everything {
        e
    }
    fn echo_tuple(t: (u8, String, f64)) -> (u8, String, f64) {
        t
    }
    fn echo_list(l: Vec<i32>) -> Vec<i32> {
        l
    }
    fn echo_strings(l: Vec<String>) -> Vec<String> {
        l
    }
    fn echo_points(l: Vec<Point>) -> Vec<Point> {
        l
    }
    fn echo_option(o: Option<String>) -> Option<String> {
        o
    }
    fn echo_result(r: Result<u32, String>) -> Result<u32, String> {
        r
    }
    fn echo_unit_result(r: Result<(), ()>) -> Result<(), ()> {
        r
    }
    #[allow(clippy::type_complexity)]
    fn echo_nested(
        n: Option<Result<Option<u8>, Vec<Option<String>>>>,
    ) -> Option<Result<Option<u8>, Vec<Option<String>>>> {
        n
    }
    fn describe(at: Point, hue: Color, label: Option<String>) -> String {
        let label = label.as_deref().unwrap_or("unlabelled");
        format!("{label} at ({}, {}) in {hue:?}", at.x, at.y)
    }
}

bindings::export!(Kitchen with_types_in bindings);
