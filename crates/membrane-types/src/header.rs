//! The 12-byte envelope header and its flags.

use core::fmt;

/// Length in bytes of an envelope header.
pub const HEADER_LEN: usize = 12;

/// The two magic bytes every envelope starts with: ASCII `"AI"`.
pub const MAGIC: [u8; 2] = [0x41, 0x49];

/// The wire-format version this crate reads and writes.
pub const WIRE_VERSION: u8 = 1;

const _: () = assert!(HEADER_LEN == 12);
const _: () = assert!(HEADER_LEN == MAGIC.len() + 1 + 1 + 4 + 4);

/// The flag byte of an envelope header (offset 3).
///
/// Bits 0–3 are defined; bits 4–7 are reserved and must be zero. A `Flags` value
/// obtained through [`Flags::from_bits`] never has a reserved bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No flag set.
    pub const NONE: Flags = Flags(0);
    /// The payload is an LZ4 block with its uncompressed size prepended (u32 LE).
    pub const COMPRESSED: Flags = Flags(1 << 0);
    /// Reserved in wire version 1: an envelope with this flag is refused.
    pub const ENCRYPTED: Flags = Flags(1 << 1);
    /// The sender expects a response envelope.
    pub const EXPECTS_RESPONSE: Flags = Flags(1 << 2);
    /// The payload is an error: a u32 LE [`ErrorCode`](crate::ErrorCode) then a UTF-8 message.
    pub const ERROR: Flags = Flags(1 << 3);
    /// The mask of every defined bit.
    pub const DEFINED: Flags = Flags(0b0000_1111);

    /// The flags from a raw byte, or `None` if a reserved bit (4–7) is set.
    #[inline]
    pub const fn from_bits(bits: u8) -> Option<Flags> {
        if bits & !Self::DEFINED.0 == 0 {
            Some(Flags(bits))
        } else {
            None
        }
    }

    /// The raw byte.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the flags of `other` added.
    #[inline]
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` with the flags of `other` removed.
    #[inline]
    #[must_use]
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Flags, &str); 4] = [
            (Flags::COMPRESSED, "COMPRESSED"),
            (Flags::ENCRYPTED, "ENCRYPTED"),
            (Flags::EXPECTS_RESPONSE, "EXPECTS_RESPONSE"),
            (Flags::ERROR, "ERROR"),
        ];
        f.write_str("Flags(")?;
        let mut first = true;
        for (flag, name) in NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("NONE")?;
        }
        f.write_str(")")
    }
}

/// A decoded envelope header.
///
/// `from_bytes` checks everything the header alone can tell (magic, version, reserved
/// flags); the length and checksum are checked against the payload by `membrane-codec`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// The flags (offset 3).
    pub flags: Flags,
    /// Number of payload bytes after the header, as carried (offset 4, u32 LE).
    pub payload_len: u32,
    /// CRC-32/ISO-HDLC of header bytes 0–7 followed by the payload (offset 8, u32 LE).
    pub checksum: u32,
}

impl Header {
    /// A header with the given fields.
    #[inline]
    pub const fn new(flags: Flags, payload_len: u32, checksum: u32) -> Header {
        Header {
            flags,
            payload_len,
            checksum,
        }
    }

    /// The first eight header bytes: the part the checksum covers.
    #[inline]
    pub const fn checked_prefix(&self) -> [u8; 8] {
        let len = self.payload_len.to_le_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            WIRE_VERSION,
            self.flags.bits(),
            len[0],
            len[1],
            len[2],
            len[3],
        ]
    }

    /// The header as its 12 wire bytes.
    #[inline]
    pub const fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let p = self.checked_prefix();
        let c = self.checksum.to_le_bytes();
        [
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], c[0], c[1], c[2], c[3],
        ]
    }

    /// Parses the first [`HEADER_LEN`] bytes of `bytes`.
    ///
    /// Never panics. Bytes after the header are ignored here.
    #[inline]
    pub const fn from_bytes(bytes: &[u8]) -> Result<Header, HeaderError> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderError::TooShort { len: bytes.len() });
        }
        if bytes[0] != MAGIC[0] || bytes[1] != MAGIC[1] {
            return Err(HeaderError::BadMagic {
                found: [bytes[0], bytes[1]],
            });
        }
        if bytes[2] != WIRE_VERSION {
            return Err(HeaderError::UnsupportedVersion { found: bytes[2] });
        }
        let flags = match Flags::from_bits(bytes[3]) {
            Some(flags) => flags,
            None => return Err(HeaderError::ReservedFlags { bits: bytes[3] }),
        };
        let payload_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let checksum = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(Header {
            flags,
            payload_len,
            checksum,
        })
    }
}

/// Why a header could not be parsed.
///
/// Exhaustive on purpose: the checks a version-1 header admits are fixed by the wire
/// format; a new check comes with a new wire version.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes were given.
    TooShort {
        /// How many bytes there were.
        len: usize,
    },
    /// The first two bytes are not [`MAGIC`].
    BadMagic {
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The version byte is not [`WIRE_VERSION`].
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A reserved flag bit (4–7) is set.
    ReservedFlags {
        /// The whole flag byte found.
        bits: u8,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::TooShort { len } => write!(
                f,
                "envelope too short: {len} bytes, the header alone is {HEADER_LEN}"
            ),
            HeaderError::BadMagic { found } => write!(
                f,
                "bad envelope magic {:#04x} {:#04x}, expected 0x41 0x49",
                found[0], found[1]
            ),
            HeaderError::UnsupportedVersion { found } => write!(
                f,
                "unsupported wire-format version {found}, this build reads version {WIRE_VERSION}"
            ),
            HeaderError::ReservedFlags { bits } => {
                write!(f, "reserved flag bits set in flag byte {bits:#010b}")
            }
        }
    }
}

impl core::error::Error for HeaderError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_defined_flag_combination() {
        for bits in 0..=0x0f {
            let flags = Flags::from_bits(bits).unwrap();
            let h = Header::new(flags, 0x0102_0304, 0xa1b2_c3d4);
            assert_eq!(Header::from_bytes(&h.to_bytes()), Ok(h));
        }
    }

    #[test]
    fn layout_is_little_endian_at_the_documented_offsets() {
        let h = Header::new(Flags::ERROR, 0x0102_0304, 0xa1b2_c3d4);
        assert_eq!(
            h.to_bytes(),
            [0x41, 0x49, 1, 8, 4, 3, 2, 1, 0xd4, 0xc3, 0xb2, 0xa1]
        );
    }

    #[test]
    fn rejects_each_bad_header() {
        let good = Header::new(Flags::NONE, 0, 0).to_bytes();
        let check =
            |bytes: &[u8], want: HeaderError| assert_eq!(Header::from_bytes(bytes), Err(want));
        check(&good[..11], HeaderError::TooShort { len: 11 });
        check(&[], HeaderError::TooShort { len: 0 });
        let mut b = good;
        b[1] = 0x48;
        check(
            &b,
            HeaderError::BadMagic {
                found: [0x41, 0x48],
            },
        );
        let mut b = good;
        b[2] = 2;
        check(&b, HeaderError::UnsupportedVersion { found: 2 });
        for bit in 4..8 {
            let mut b = good;
            b[3] = 1 << bit;
            check(&b, HeaderError::ReservedFlags { bits: 1 << bit });
        }
    }

    #[test]
    fn flags_debug_names_each_bit() {
        extern crate std;
        use std::format;
        assert_eq!(format!("{:?}", Flags::NONE), "Flags(NONE)");
        assert_eq!(
            format!("{:?}", Flags::COMPRESSED | Flags::ERROR),
            "Flags(COMPRESSED | ERROR)"
        );
    }
}
