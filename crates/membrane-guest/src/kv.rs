//! Key-value storage the host keeps for the module (imports `membrane_services.kv_get`,
//! `kv_put`, `kv_delete`, `kv_scan`, grant `kv`). Each module has a namespace of its
//! own: keys and values are bytes, keys sort bytewise.
//!
//! ```
//! use membrane_guest::{export, kv, Error};
//!
//! #[export]
//! pub fn visit(page: String) -> Result<u64, Error> {
//!     let key = [b"visits/", page.as_bytes()].concat();
//!     let visits = kv::get_value::<u64>(&key)?.unwrap_or(0) + 1;
//!     kv::put_value(&key, &visits)?;
//!     Ok(visits)
//! }
//!
//! #[export]
//! pub fn pages() -> Result<Vec<String>, Error> {
//!     Ok(kv::scan(b"visits/")?
//!         .into_iter()
//!         .map(|(key, _value)| String::from_utf8_lossy(&key[7..]).into_owned())
//!         .collect())
//! }
//! # // Off wasm32 there is no host.
//! # assert_eq!(visit("home".into()).unwrap_err().code, membrane_guest::ErrorCode::NOT_FOUND);
//! # assert!(pages().is_err());
//! ```
//!
//! A write the host's quotas refuse (key size, value size, total bytes of the
//! namespace) is an error with code `QUOTA_EXCEEDED`, and one its storage fails is
//! `STORAGE_FAILED`; either way nothing was written. Off wasm32 every function returns
//! an error with code `NOT_FOUND`.

use alloc::vec::Vec;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::host::{call_host, call_host_bytes, call_host_prefixed, call_host_with};
use crate::services::{decode, imports};
use membrane_types::ErrorCode;

const GET: &str = "membrane_services.kv_get";
const PUT: &str = "membrane_services.kv_put";
const DELETE: &str = "membrane_services.kv_delete";
const SCAN: &str = "membrane_services.kv_scan";

/// How many entries [`scan`] asks for per page.
pub const SCAN_PAGE_LIMIT: u32 = 256;

/// The value stored under `key`, or `None`. Request: the key; response: postcard
/// `Option<&[u8]>`.
pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    get_with(key, |value| Ok(value.map(<[u8]>::to_vec)))
}

/// The value stored under `key`, deserialized (postcard) where the host wrote it, or
/// `None`. A stored value that does not deserialize as `T` is an error with code
/// `INVALID_INPUT`.
pub fn get_value<T: DeserializeOwned>(key: &[u8]) -> Result<Option<T>, Error> {
    get_with(key, |value| {
        value
            .map(|bytes| {
                membrane_codec::from_payload(bytes).map_err(|e| undecodable(key.len(), &e))
            })
            .transpose()
    })
}

/// Asks for the value under `key` and hands `read` the value where it lies.
fn get_with<R>(
    key: &[u8],
    read: impl FnOnce(Option<&[u8]>) -> Result<R, Error>,
) -> Result<R, Error> {
    call_host_bytes(GET, imports::kv_get, key, |response| {
        read(decode::<Option<&[u8]>>(GET, response)?)
    })?
}

/// Stores `value` under `key`, replacing what was there. Request: postcard `key`, then
/// the value; response empty.
pub fn put(key: &[u8], value: &[u8]) -> Result<(), Error> {
    call_host_prefixed(PUT, imports::kv_put, &key, value, |_| ())
}

/// Stores `value`'s postcard encoding under `key` (see [`put`]), serialized straight
/// into the request.
pub fn put_value<T: Serialize + ?Sized>(key: &[u8], value: &T) -> Result<(), Error> {
    // Postcard writes a tuple as its fields one after the other: the key (a slice
    // encodes like bytes), then the value's encoding, which is the stored value.
    call_host(PUT, imports::kv_put, &(key, value))
}

/// Deletes the value under `key`; whether there was one. Request: the key; response:
/// postcard `bool`.
pub fn delete(key: &[u8]) -> Result<bool, Error> {
    call_host_bytes(DELETE, imports::kv_delete, key, |response| {
        decode::<bool>(DELETE, response)
    })?
}

/// An entry of the store: a key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One page of a [`scan_page`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// The entries `(key, value)`, in key order.
    pub entries: Vec<Entry>,
    /// Whether more entries follow the last one: ask again with it as `after`.
    pub more: bool,
}

/// The entries whose keys start with `prefix`, in key order, after the key `after`
/// (from the first when `None`), at most `limit` of them (the host may cap it lower).
/// Request: postcard `(prefix, after, limit)`; response: postcard
/// `(Vec<(&[u8], &[u8])>, bool)`.
pub fn scan_page(prefix: &[u8], after: Option<&[u8]>, limit: u32) -> Result<ScanPage, Error> {
    call_host_with(
        SCAN,
        imports::kv_scan,
        &(prefix, after, limit),
        decode_scan_page,
    )?
}

/// Every entry whose key starts with `prefix`, in key order: [`scan_page`] after page of
/// [`SCAN_PAGE_LIMIT`] entries, each after the previous page's last key.
pub fn scan(prefix: &[u8]) -> Result<Vec<Entry>, Error> {
    let mut entries = Vec::new();
    let mut page = scan_page(prefix, None, SCAN_PAGE_LIMIT)?;
    loop {
        let more = page.more;
        entries.append(&mut page.entries);
        if !more {
            return Ok(entries);
        }
        let Some((after, _)) = entries.last() else {
            return Err(no_progress());
        };
        page = scan_page(prefix, Some(after), SCAN_PAGE_LIMIT)?;
        if page.entries.is_empty() && page.more {
            return Err(no_progress());
        }
    }
}

/// A scan response's payload as a [`ScanPage`].
fn decode_scan_page(response: &[u8]) -> Result<ScanPage, Error> {
    let (entries, more) = decode::<(Vec<(&[u8], &[u8])>, bool)>(SCAN, response)?;
    Ok(ScanPage {
        entries: entries
            .into_iter()
            .map(|(key, value)| (key.to_vec(), value.to_vec()))
            .collect(),
        more,
    })
}

#[cold]
#[inline(never)]
fn undecodable(key_len: usize, e: &membrane_codec::DecodeError) -> Error {
    Error::new(
        ErrorCode::INVALID_INPUT,
        alloc::format!("the value stored under a key of {key_len} bytes does not decode: {e}"),
    )
}

#[cold]
#[inline(never)]
fn no_progress() -> Error {
    Error::new(
        ErrorCode::HOST_FUNCTION_FAILED,
        alloc::format!("host function {SCAN} says more entries follow but returned none"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn off_wasm32_storage_reports_not_found() {
        for code in [
            get(b"k").unwrap_err().code,
            get_value::<u64>(b"k").unwrap_err().code,
            put(b"k", b"v").unwrap_err().code,
            put_value(b"k", &1u64).unwrap_err().code,
            delete(b"k").unwrap_err().code,
            scan_page(b"", None, 1).unwrap_err().code,
            scan(b"").unwrap_err().code,
        ] {
            assert_eq!(code, ErrorCode::NOT_FOUND);
        }
    }

    #[test]
    fn scan_responses_decode() {
        let entries: Vec<(&[u8], &[u8])> = vec![(b"a", b""), (b"a\x00\xff", &[7; 300])];
        let response = postcard::to_allocvec(&(&entries, true)).unwrap();
        let page = decode_scan_page(&response).unwrap();
        assert!(page.more);
        assert_eq!(
            page.entries,
            vec![
                (b"a".to_vec(), Vec::new()),
                (b"a\x00\xff".to_vec(), vec![7; 300]),
            ]
        );
        // Owned vectors encode the same as slices.
        let owned: (Vec<Entry>, bool) = (Vec::new(), false);
        let page = decode_scan_page(&postcard::to_allocvec(&owned).unwrap()).unwrap();
        assert_eq!(page, ScanPage::default());
        for bad in [&[][..], &[1, 1, b'a'][..], &[0, 2][..], &[0, 0, 0][..]] {
            let e = decode_scan_page(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::HOST_FUNCTION_FAILED, "{bad:?}");
        }
    }

    #[test]
    fn get_responses_decode() {
        for value in [None, Some(&b""[..]), Some(&b"\x00value"[..])] {
            let response = postcard::to_allocvec(&value).unwrap();
            assert_eq!(decode::<Option<&[u8]>>(GET, &response), Ok(value));
        }
    }

    /// The requests written from typed values are the bytes the contract names.
    #[test]
    fn requests_encode_as_specified() {
        let key: &[u8] = b"count";
        let typed = postcard::to_allocvec(&(key, &5u64)).unwrap();
        let mut bytes = postcard::to_allocvec(&key).unwrap();
        bytes.extend(postcard::to_allocvec(&5u64).unwrap());
        assert_eq!(typed, bytes);
        assert_eq!(bytes, b"\x05count\x05");

        let scan: (&[u8], Option<&[u8]>, u32) = (b"p", Some(b"pa"), 256);
        assert_eq!(
            postcard::to_allocvec(&scan).unwrap(),
            b"\x01p\x01\x02pa\x80\x02"
        );
    }

    #[test]
    fn undecodable_values_name_the_key_length() {
        let e = undecodable(5, &membrane_codec::DecodeError::MalformedErrorPayload);
        assert_eq!(e.code, ErrorCode::INVALID_INPUT);
        assert!(
            e.message
                .starts_with("the value stored under a key of 5 bytes does not decode: "),
            "{e}"
        );
    }
}
