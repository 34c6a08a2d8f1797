//! Hand-written protobuf encoding and reading, shared by the record formats.

use prost::encoding::{
    decode_varint, encode_varint, encoded_len_varint, skip_field, DecodeContext, WireType,
};
use rust_decimal::Decimal;

use super::{invalid, WireError};

pub(super) fn decimal_from_bytes(what: &'static str, b: &[u8]) -> Result<Decimal, WireError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| invalid(what, format!("decimal of {} bytes, expected 16", b.len())))?;
    Ok(Decimal::deserialize(arr))
}

// Protobuf wire types.
pub(super) const VARINT: u64 = 0;
pub(super) const LEN: u64 = 2;

pub(super) fn put_key(field: u64, wire_type: u64, out: &mut Vec<u8>) {
    encode_varint(field << 3 | wire_type, out);
}

pub(super) fn put_bytes_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
    put_key(field, LEN, out);
    encode_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

pub(super) fn bytes_field_len(b: &[u8]) -> usize {
    1 + encoded_len_varint(b.len() as u64) + b.len()
}

/// Reads the fields of one protobuf message, calling `field` with each field number, wire type
/// and the rest of the buffer positioned at its value; unknown fields are skipped by `field`
/// returning `false`.
pub(super) fn read_fields<'a>(
    what: &'static str,
    mut b: &'a [u8],
    mut field: impl FnMut(u64, &mut &'a [u8]) -> Result<bool, WireError>,
) -> Result<(), WireError> {
    let decode = |cause| WireError::Decode { what, cause };
    while !b.is_empty() {
        let key = decode_varint(&mut b).map_err(decode)?;
        let (number, wire_type) = (key >> 3, key & 7);
        if !field(key, &mut b)? {
            let wt = WireType::try_from(wire_type).map_err(decode)?;
            skip_field(wt, number as u32, &mut b, DecodeContext::default()).map_err(decode)?;
        }
    }
    Ok(())
}

pub(super) fn read_varint(what: &'static str, b: &mut &[u8]) -> Result<u64, WireError> {
    decode_varint(b).map_err(|cause| WireError::Decode { what, cause })
}

pub(super) fn read_bytes<'a>(what: &'static str, b: &mut &'a [u8]) -> Result<&'a [u8], WireError> {
    let len = read_varint(what, b)? as usize;
    if b.len() < len {
        return Err(invalid(what, "truncated field"));
    }
    let (v, rest) = b.split_at(len);
    *b = rest;
    Ok(v)
}

pub(super) fn read_str<'a>(what: &'static str, b: &mut &'a [u8]) -> Result<&'a str, WireError> {
    std::str::from_utf8(read_bytes(what, b)?).map_err(|_| invalid(what, "string is not UTF-8"))
}

pub(super) fn key(field: u64, wire_type: u64) -> u64 {
    field << 3 | wire_type
}
