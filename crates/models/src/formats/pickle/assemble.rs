//! Assembles pickles opcode by opcode for tests, in the shapes `torch.save` writes them (compare
//! `python3 -m pickletools` on a real checkpoint's `data.pkl`).

use std::path::Path;

use super::{Loaded, load};
use crate::error::ModelError;

/// Loads a pickle as a checkpoint's `data.pkl` (persistent ids allowed).
pub fn run(bytes: &[u8]) -> Result<Loaded, ModelError> {
    load(Path::new("t.pth"), bytes, 0, true)
}

/// Why a pickle is refused; panics if it loads.
pub fn reason(bytes: &[u8]) -> String {
    match run(bytes) {
        Ok(_) => panic!("loaded a bad pickle"),
        Err(error) => error.to_string(),
    }
}

/// A pickle being written; each method appends opcodes.
pub struct Pickle {
    bytes: Vec<u8>,
    /// Write storage ids as `_legacy_save` does, with a sixth `view_metadata` field.
    legacy: bool,
}

impl Pickle {
    /// PROTO 2, the protocol `torch.save` uses.
    pub fn new() -> Self {
        Self { bytes: vec![0x80, 2], legacy: false }
    }

    /// A pickle whose storage ids have the legacy format's sixth field.
    pub fn legacy() -> Self {
        Self { bytes: vec![0x80, 2], legacy: true }
    }

    pub fn op(&mut self, op: u8) -> &mut Self {
        self.bytes.push(op);
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// BINUNICODE.
    pub fn str(&mut self, text: &str) -> &mut Self {
        self.bytes.push(b'X');
        self.bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
        self.raw(text.as_bytes())
    }

    /// The smallest integer opcode, as pickle.py picks it.
    pub fn int(&mut self, value: i64) -> &mut Self {
        match value {
            0..=0xFF => self.raw(&[b'K', value as u8]),
            0x100..=0xFFFF => self.op(b'M').raw(&(value as u16).to_le_bytes()),
            _ if i32::try_from(value).is_ok() => self.op(b'J').raw(&(value as i32).to_le_bytes()),
            _ => self.raw(&[0x8a, 8]).raw(&value.to_le_bytes()),
        }
    }

    /// GLOBAL, as protocol 2 writes it.
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c').raw(module.as_bytes()).op(b'\n').raw(name.as_bytes()).op(b'\n')
    }

    /// STACK_GLOBAL, as protocol 4 writes it.
    pub fn stack_global(&mut self, module: &str, name: &str) -> &mut Self {
        for text in [module, name] {
            self.raw(&[0x8c, text.len() as u8]).raw(text.as_bytes());
        }
        self.op(0x93)
    }

    pub fn put(&mut self, index: u8) -> &mut Self {
        self.raw(&[b'q', index])
    }

    pub fn get(&mut self, index: u8) -> &mut Self {
        self.raw(&[b'h', index])
    }

    /// A tuple of integers (a tensor's size or stride).
    pub fn ints(&mut self, values: &[i64]) -> &mut Self {
        self.op(b'(');
        for v in values {
            self.int(*v);
        }
        self.op(b't')
    }

    /// A storage's persistent id and BINPERSID.
    pub fn storage(&mut self, class: &str, key: &str, numel: i64) -> &mut Self {
        self.op(b'(').str("storage").global("torch", class).str(key).str("cpu").int(numel);
        if self.legacy {
            self.op(b'N');
        }
        self.op(b't').op(b'Q')
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`.
    pub fn tensor(
        &mut self,
        class: &str,
        key: &str,
        numel: i64,
        offset: i64,
        shape: &[i64],
        strides: &[i64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.storage(class, key, numel).int(offset).ints(shape).ints(strides).op(0x89);
        self.global("collections", "OrderedDict").op(b')').op(b'R');
        self.op(b't').op(b'R')
    }

    /// `OrderedDict()` then MARK, ready for `(key, value)` pairs and `end_dict`.
    pub fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b')').op(b'R').op(b'(')
    }

    /// SETITEMS, closing `ordered_dict` or an `EMPTY_DICT MARK`.
    pub fn end_dict(&mut self) -> &mut Self {
        self.op(b'u')
    }

    /// STOP, and the bytes so far.
    pub fn stop(&mut self) -> Vec<u8> {
        self.op(b'.');
        self.bytes.clone()
    }
}
