//! A minimal, read-only ZIP reader for PyTorch checkpoints: the end-of-central-directory record
//! (and its ZIP64 locator and record, since checkpoints over 4 GiB exist), the central directory,
//! and each entry's local header to find where its bytes start. It follows PKWARE's APPNOTE.TXT
//! (sections 4.3.6-4.3.16, 4.5.3) and only hands out STORED entries, which is how `torch.save`
//! writes tensor data (uncompressed, 64-byte aligned), so tensors can be mapped in place.
//!
//! Every offset and count comes from the file, so each is checked against the bytes present
//! before it is used; nothing is allocated from a count alone. CRCs are not checked: that would
//! mean reading every tensor byte of a multi-gigabyte file just to list it.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{ModelError, ModelErrorKind};

const LOCAL_HEADER: [u8; 4] = *b"PK\x03\x04";
const CENTRAL_HEADER: [u8; 4] = *b"PK\x01\x02";
const END_RECORD: [u8; 4] = *b"PK\x05\x06";
const ZIP64_END_RECORD: [u8; 4] = *b"PK\x06\x06";
const ZIP64_LOCATOR: [u8; 4] = *b"PK\x06\x07";
/// The end record's fixed part; a comment of up to 65535 bytes may follow it.
const END_RECORD_LEN: usize = 22;
const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_LEN: usize = 30;
const ZIP64_END_RECORD_LEN: usize = 56;
const ZIP64_LOCATOR_LEN: usize = 20;
/// The extra-field id that carries 64-bit sizes and offsets.
const ZIP64_EXTRA: u16 = 0x0001;
pub const METHOD_STORED: u16 = 0;

/// One file of the archive, as its central directory entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// 0 for STORED, 8 for DEFLATE.
    pub method: u16,
    pub flags: u16,
    pub compressed_size: u64,
    pub size: u64,
    /// Where the entry's local header starts.
    pub header_offset: u64,
}

/// A parsed archive over borrowed bytes.
pub struct Archive<'a> {
    bytes: &'a [u8],
    entries: Vec<Entry>,
    /// Entry indices by name in ASCII lowercase: PyTorch's reader (miniz's
    /// `mz_zip_reader_locate_file`, flags 0) finds names ignoring ASCII case, so this one does too.
    by_name: HashMap<String, usize>,
}

/// Whether the bytes start like a ZIP archive (a local header, or the end record of an empty one).
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(&LOCAL_HEADER) || bytes.starts_with(&END_RECORD)
}

impl<'a> Archive<'a> {
    /// Reads the central directory; entry data is only located when asked for.
    pub fn parse(path: &Path, bytes: &'a [u8]) -> Result<Self, ModelError> {
        let end = find_end_record(path, bytes)?;
        let disk = read_u16(bytes, end + 4).unwrap_or(0);
        let cd_disk = read_u16(bytes, end + 6).unwrap_or(0);
        let mut count = u64::from(read_u16(bytes, end + 10).unwrap_or(0));
        let mut cd_size = u64::from(read_u32(bytes, end + 12).unwrap_or(0));
        let mut cd_offset = u64::from(read_u32(bytes, end + 16).unwrap_or(0));
        let needs_zip64 = count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
        if (disk != 0 && disk != 0xFFFF) || (cd_disk != 0 && cd_disk != 0xFFFF) {
            return Err(unsupported(path, "multi-part zip archives"));
        }
        // The ZIP64 locator sits just before the end record; when present its record wins, as
        // writers set the 32-bit fields to 0xFFFF... only when a value overflows.
        if let Some(locator) =
            end.checked_sub(ZIP64_LOCATOR_LEN).filter(|at| field::<4>(bytes, *at) == Some(ZIP64_LOCATOR))
        {
            let record = read_u64(bytes, locator + 8).ok_or_else(|| malformed(path, "a cut ZIP64 locator"))?;
            let record = usize::try_from(record)
                .ok()
                .filter(|at| {
                    field::<4>(bytes, *at) == Some(ZIP64_END_RECORD) && at.saturating_add(ZIP64_END_RECORD_LEN) <= end
                })
                .ok_or_else(|| malformed(path, "the ZIP64 locator points at no ZIP64 end record"))?;
            let values = (read_u64(bytes, record + 32), read_u64(bytes, record + 40), read_u64(bytes, record + 48));
            let (Some(c), Some(s), Some(o)) = values else { return Err(malformed(path, "a cut ZIP64 end record")) };
            (count, cd_size, cd_offset) = (c, s, o);
        } else if needs_zip64 {
            return Err(malformed(path, "the end record needs ZIP64 records the archive lacks"));
        }
        let cd = cd_offset
            .checked_add(cd_size)
            .filter(|cd_end| *cd_end <= end as u64)
            .map(|cd_end| &bytes[cd_offset as usize..cd_end as usize])
            .ok_or_else(|| {
                truncated(
                    path,
                    format!("the central directory at {cd_offset} ({cd_size} bytes) is past the end record"),
                )
            })?;

        let (mut entries, mut by_name) = (Vec::new(), HashMap::new());
        let mut at = 0usize;
        // `count` is untrusted: the loop is bounded by the directory's bytes, 46 at least each.
        for index in 0..count {
            let entry = parse_central_entry(cd, at).ok_or_else(|| {
                malformed(path, format!("central directory entry {index} is cut or has a bad signature"))
            })?;
            at = entry.1;
            let entry = entry.0.map_err(|reason| malformed(path, reason))?;
            // Two readers could pick different copies; refuse rather than guess. Names that
            // differ only in case are one name to PyTorch, which could read either copy.
            if let Some(seen) = by_name.insert(entry.name.to_ascii_lowercase(), entries.len()) {
                let seen: &Entry = &entries[seen];
                let reason = if seen.name == entry.name {
                    format!("the archive holds {} twice", entry.name)
                } else {
                    format!(
                        "the archive holds {} and {}, one name to PyTorch, which ignores case",
                        seen.name, entry.name
                    )
                };
                return Err(malformed(path, reason));
            }
            entries.push(entry);
        }
        Ok(Self { bytes, entries, by_name })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry of a name, its ASCII case ignored as PyTorch's reader ignores it.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(&name.to_ascii_lowercase()).map(|i| &self.entries[*i])
    }

    /// Where a STORED entry's bytes lie in the file: `(offset, length)`.
    pub fn stored_range(&self, path: &Path, entry: &Entry) -> Result<(u64, u64), ModelError> {
        if entry.flags & 1 != 0 {
            return Err(unsupported(path, "encrypted zip entries"));
        }
        if entry.method != METHOD_STORED {
            return Err(unsupported(path, "compressed PyTorch archive entries"));
        }
        if entry.compressed_size != entry.size {
            return Err(malformed(path, format!("{} is stored but its two sizes differ", entry.name)));
        }
        let header = usize::try_from(entry.header_offset)
            .ok()
            .filter(|at| at.saturating_add(LOCAL_HEADER_LEN) <= self.bytes.len())
            .ok_or_else(|| truncated(path, format!("the local header of {} is past the end", entry.name)))?;
        if field::<4>(self.bytes, header) != Some(LOCAL_HEADER) {
            return Err(malformed(path, format!("{} has no local header where the directory says", entry.name)));
        }
        // The local copy of the method can disagree with the directory's; refuse either kind.
        if read_u16(self.bytes, header + 8) != Some(METHOD_STORED) {
            return Err(unsupported(path, "compressed PyTorch archive entries"));
        }
        let name_len = u64::from(read_u16(self.bytes, header + 26).unwrap_or(0));
        let extra_len = u64::from(read_u16(self.bytes, header + 28).unwrap_or(0));
        let start = entry.header_offset + LOCAL_HEADER_LEN as u64 + name_len + extra_len;
        match start.checked_add(entry.size) {
            Some(end) if end <= self.bytes.len() as u64 => Ok((start, entry.size)),
            _ => Err(truncated(
                path,
                format!(
                    "{} needs bytes {start}..{} but the file has {}",
                    entry.name,
                    start.saturating_add(entry.size),
                    self.bytes.len()
                ),
            )),
        }
    }

    /// A STORED entry's bytes.
    pub fn stored_bytes(&self, path: &Path, entry: &Entry) -> Result<&'a [u8], ModelError> {
        let (start, len) = self.stored_range(path, entry)?;
        // stored_range checked start + len against the length of `bytes`.
        Ok(&self.bytes[start as usize..(start + len) as usize])
    }
}

/// The last end record whose comment fits the file, searched in the last 64 KiB + 22 bytes.
fn find_end_record(path: &Path, bytes: &[u8]) -> Result<usize, ModelError> {
    let Some(last) = bytes.len().checked_sub(END_RECORD_LEN) else {
        return Err(truncated(path, format!("{} bytes cannot hold a zip end record", bytes.len())));
    };
    let lowest = last.saturating_sub(usize::from(u16::MAX));
    (lowest..=last)
        .rev()
        .find(|at| {
            field::<4>(bytes, *at) == Some(END_RECORD)
                && read_u16(bytes, at + 20)
                    .is_some_and(|comment| at + END_RECORD_LEN + usize::from(comment) <= bytes.len())
        })
        .ok_or_else(|| truncated(path, "no zip end record in the last 64 KiB (cut short?)"))
}

/// One central directory entry at `at`: the entry (or why it is wrong) and where the next starts;
/// `None` when the bytes are cut or the signature is wrong.
fn parse_central_entry(cd: &[u8], at: usize) -> Option<(Result<Entry, String>, usize)> {
    if field::<4>(cd, at)? != CENTRAL_HEADER || at.checked_add(CENTRAL_HEADER_LEN)? > cd.len() {
        return None;
    }
    let flags = read_u16(cd, at + 8)?;
    let method = read_u16(cd, at + 10)?;
    let mut compressed_size = u64::from(read_u32(cd, at + 20)?);
    let mut size = u64::from(read_u32(cd, at + 24)?);
    let name_len = usize::from(read_u16(cd, at + 28)?);
    let extra_len = usize::from(read_u16(cd, at + 30)?);
    let comment_len = usize::from(read_u16(cd, at + 32)?);
    let mut header_offset = u64::from(read_u32(cd, at + 42)?);
    let name_at = at + CENTRAL_HEADER_LEN;
    let name = String::from_utf8_lossy(cd.get(name_at..name_at + name_len)?).into_owned();
    let extra = cd.get(name_at + name_len..name_at + name_len + extra_len)?;
    let next = (name_at + name_len + extra_len).checked_add(comment_len).filter(|n| *n <= cd.len())?;

    // The ZIP64 extra field holds, in this order, only the values whose 32-bit field overflowed.
    if [size, compressed_size, header_offset].contains(&0xFFFF_FFFF) {
        let Some(zip64) = extra_field(extra, ZIP64_EXTRA) else {
            return Some((Err(format!("{name} needs a ZIP64 extra field it lacks")), next));
        };
        let mut field_at = 0;
        for value in [&mut size, &mut compressed_size, &mut header_offset] {
            if *value == 0xFFFF_FFFF {
                let Some(wide) = read_u64(zip64, field_at) else {
                    return Some((Err(format!("{name} has a cut ZIP64 extra field")), next));
                };
                *value = wide;
                field_at += 8;
            }
        }
    }
    Some((Ok(Entry { name, method, flags, compressed_size, size, header_offset }), next))
}

/// The data of the extra field with `id`, if present.
fn extra_field(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let (field_id, len) = (read_u16(extra, 0)?, usize::from(read_u16(extra, 2)?));
        let data = extra.get(4..4 + len)?;
        if field_id == id {
            return Some(data);
        }
        extra = &extra[4 + len..];
    }
    None
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    field(bytes, at).map(u16::from_le_bytes)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    field(bytes, at).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    field(bytes, at).map(u64::from_le_bytes)
}

fn malformed(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::malformed(path, "ZIP", reason)
}

fn truncated(path: &Path, what: impl Into<String>) -> ModelError {
    ModelError::new(path, ModelErrorKind::Truncated(what.into()))
}

fn unsupported(path: &Path, what: &str) -> ModelError {
    ModelError::new(path, ModelErrorKind::Unsupported(what.into()))
}

/// A ZIP writer for tests, laid out as PyTorch's writer does (64-byte aligned data).
#[cfg(test)]
pub(crate) mod write {
    /// An archive of `(name, bytes, method)` entries; the bytes are written as given (a method
    /// of 8 only labels them DEFLATE). `zip64` writes ZIP64 records and extra fields as a
    /// checkpoint over 4 GiB has.
    pub fn archive(entries: &[(&str, &[u8], u16)], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data, method) in entries {
            let offset = out.len() as u64;
            // Pad the local extra field so the data starts on a 64-byte boundary.
            let unpadded = out.len() + 30 + name.len() + 4;
            let pad = (64 - unpadded % 64) % 64;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 8]); // time, date, crc
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&((4 + pad) as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&0x4650u16.to_le_bytes());
            out.extend_from_slice(&(pad as u16).to_le_bytes());
            out.extend(std::iter::repeat_n(b'Z', pad));
            out.extend_from_slice(data);

            let (size32, offset32) = if zip64 { (u32::MAX, u32::MAX) } else { (data.len() as u32, offset as u32) };
            let mut extra = Vec::new();
            if zip64 {
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&24u16.to_le_bytes());
                for v in [data.len() as u64, data.len() as u64, offset] {
                    extra.extend_from_slice(&v.to_le_bytes());
                }
            }
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&[45, 0, 45, 0, 0, 0]);
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&size32.to_le_bytes());
            central.extend_from_slice(&size32.to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 8]); // comment length, disk, internal and external attributes
            central.extend_from_slice(&[0; 2]);
            central.extend_from_slice(&offset32.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
            central.extend_from_slice(&extra);
        }
        let (cd_offset, cd_size, count) = (out.len() as u64, central.len() as u64, entries.len() as u64);
        out.extend_from_slice(&central);
        if zip64 {
            let record = out.len() as u64;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for v in [count, count, cd_size, cd_offset] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(b"PK\x06\x07");
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let (count16, size32, offset32) =
            if zip64 { (u16::MAX, u32::MAX, u32::MAX) } else { (count as u16, cd_size as u32, cd_offset as u32) };
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&count16.to_le_bytes());
        out.extend_from_slice(&count16.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&offset32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(bytes: &[u8]) -> ModelErrorKind {
        match Archive::parse(Path::new("x"), bytes) {
            Ok(_) => panic!("parsed a broken archive"),
            Err(error) => error.kind,
        }
    }

    fn two_entries(zip64: bool) -> Vec<u8> {
        write::archive(&[("a/data.pkl", b"pickle", 0), ("a/data/0", &[7; 16], 0)], zip64)
    }

    #[test]
    fn finds_entries_and_aligned_stored_data() {
        for zip64 in [false, true] {
            let bytes = two_entries(zip64);
            let archive = Archive::parse(Path::new("x.pth"), &bytes).unwrap();
            assert_eq!(archive.entries().len(), 2);
            let entry = archive.get("a/data/0").unwrap();
            let (start, len) = archive.stored_range(Path::new("x.pth"), entry).unwrap();
            assert_eq!((start % 64, len), (0, 16), "zip64: {zip64}");
            assert_eq!(
                archive.stored_bytes(Path::new("x.pth"), archive.get("a/data.pkl").unwrap()).unwrap(),
                b"pickle"
            );
            assert!(looks_like_zip(&bytes));
        }
    }

    #[test]
    fn a_trailing_comment_is_skipped() {
        let mut bytes = two_entries(false);
        let at = bytes.len() - 2;
        bytes[at..].copy_from_slice(&5u16.to_le_bytes());
        bytes.extend_from_slice(b"PK\x05\x06"); // a decoy signature inside the comment
        bytes.push(b'!');
        assert_eq!(Archive::parse(Path::new("x"), &bytes).unwrap().entries().len(), 2);
    }

    #[test]
    fn every_cut_is_an_error_not_a_panic() {
        for zip64 in [false, true] {
            let bytes = two_entries(zip64);
            for cut in 0..bytes.len() {
                let cut = &bytes[..cut];
                if let Ok(archive) = Archive::parse(Path::new("x"), cut) {
                    for entry in archive.entries() {
                        let _ = archive.stored_range(Path::new("x"), entry);
                    }
                }
            }
        }
    }

    #[test]
    fn compressed_entries_are_unsupported() {
        let bytes = write::archive(&[("a/data.pkl", b"xx", 8)], false);
        let archive = Archive::parse(Path::new("x"), &bytes).unwrap();
        let error = archive.stored_range(Path::new("x"), &archive.entries()[0]).unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::Unsupported("compressed PyTorch archive entries".into()));
    }

    #[test]
    fn huge_counts_and_offsets_are_errors() {
        let mut bytes = two_entries(false);
        let end = bytes.len() - END_RECORD_LEN;
        bytes[end + 10..end + 12].copy_from_slice(&0xFFFEu16.to_le_bytes()); // more entries than exist
        assert!(matches!(error(&bytes), ModelErrorKind::Malformed { .. }));
        let mut bytes = two_entries(false);
        bytes[end + 16..end + 20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert!(matches!(error(&bytes), ModelErrorKind::Truncated(_)));
        let mut bytes = two_entries(true);
        let end = bytes.len() - END_RECORD_LEN;
        bytes[end - 12..end - 4].copy_from_slice(&u64::MAX.to_le_bytes()); // the ZIP64 record's offset
        assert!(Archive::parse(Path::new("x"), &bytes).is_err());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let bytes = write::archive(&[("a/data.pkl", b"1", 0), ("a/data.pkl", b"2", 0)], false);
        assert!(matches!(error(&bytes), ModelErrorKind::Malformed { .. }));
    }

    #[test]
    fn names_that_differ_only_in_case_are_one_name_held_twice() {
        // PyTorch's reader finds `a/data.pkl` in either entry: a harmless copy here could hide
        // the one torch.load runs.
        let bytes = write::archive(&[("a/data.pkl", b"1", 0), ("a/Data.PKL", b"2", 0)], false);
        let ModelErrorKind::Malformed { reason, .. } = error(&bytes) else { panic!("not malformed") };
        assert!(reason.contains("a/data.pkl and a/Data.PKL"), "{reason}");
        let bytes = write::archive(&[("A/DATA.PKL", b"pickle", 0)], false);
        let archive = Archive::parse(Path::new("x"), &bytes).unwrap();
        assert_eq!(archive.get("a/data.pkl").map(|e| e.name.as_str()), Some("A/DATA.PKL"));
    }
}
