//! A pickle machine that builds data and runs no code: the opcodes of Python's pickle protocols
//! 2-5 that PyTorch checkpoints use (opcode table: CPython `Lib/pickletools.py`; semantics:
//! `Lib/pickle.py`'s `_Unpickler`). What the allowed globals and PyTorch's persistent storage
//! ids turn into is in `pickle/calls.rs`.
//!
//! Why not a real unpickler: `pickle.load` calls whatever a file names (`os.system`,
//! `builtins.eval`), so a checkpoint is a program. This machine knows a short allow-list of
//! data constructors and refuses any other global the moment the opcode naming it is read:
//! GLOBAL, STACK_GLOBAL, protocol 0's INST, and the EXT codes, which name a global by a number
//! only the loading process knows and so are always refused.
//!
//! Values that hold other values live in an arena and are referred to by index, so a memo GET
//! or a DUP copies an index, never a structure (no memory bombs), cycles cannot leak, and
//! dropping a deep structure recurses nowhere. Every op, and every item an op has to copy,
//! counts against one budget, so work stays proportional to the bytes read.

use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use crate::error::{ModelError, ModelErrorKind};

#[cfg(test)]
pub(crate) mod assemble;
mod calls;

pub use calls::{Global, Storage, Tensor, allowed_global};

/// Ops (plus copied items) one pickle may cost: far above the ~30 per tensor a checkpoint needs.
const MAX_OPS: usize = 1 << 24;
const MAX_MEMO: usize = 1 << 23;
/// How deep MARKs may nest, and dictionaries when they are turned into tensor names.
pub const MAX_DEPTH: usize = 256;
/// PyTorch tensors have at most a few dozen dimensions; the cap keeps shape copies small.
pub const MAX_DIMS: usize = 64;

/// A pickled value. Containers and torch records are `Node`s in the arena.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    /// An allowed global, never called: REDUCE looks at which one it is.
    Global(Global),
    Node(usize),
}

/// A value with identity: what lists, dicts and torch records are.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Dicts and OrderedDicts, in insertion order; a repeated key is kept twice and the later
    /// one wins when read (Python's result) without an O(n) search per insert.
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    // Boxed so every node stays small: a pickle of empty tuples costs 32 bytes a node.
    Storage(Box<Storage>),
    Tensor(Box<Tensor>),
    Opaque,
}

/// One unpickled object with the arena its values point into.
#[derive(Debug)]
pub struct Loaded {
    pub root: Value,
    pub nodes: Vec<Node>,
    /// The byte after the STOP opcode (where a legacy file's next pickle starts).
    pub end: usize,
    /// What the pickle cost; later walks over the result may spend as much again.
    pub ops: usize,
}

impl Loaded {
    pub fn node(&self, value: &Value) -> Option<&Node> {
        match value {
            Value::Node(id) => self.nodes.get(*id),
            _ => None,
        }
    }
}

/// Runs one pickle starting at `start`; `persistent` allows storage ids (only a checkpoint's
/// main object has them).
pub fn load(path: &Path, bytes: &[u8], start: usize, persistent: bool) -> Result<Loaded, ModelError> {
    Machine {
        path,
        bytes,
        pos: start,
        stack: Vec::new(),
        metastack: Vec::new(),
        memo: HashMap::new(),
        nodes: Vec::new(),
        ops: 0,
        persistent,
    }
    .run()
}

struct Machine<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// The stacks saved by MARK, as in `pickle.py`: items above a mark are a fresh stack.
    metastack: Vec<Vec<Value>>,
    memo: HashMap<u32, Value>,
    nodes: Vec<Node>,
    ops: usize,
    persistent: bool,
}

impl<'a> Machine<'a> {
    fn run(mut self) -> Result<Loaded, ModelError> {
        loop {
            self.charge(1)?;
            let op = self.take(1, "an opcode")?[0];
            match op {
                0x80 => {
                    let protocol = self.take(1, "PROTO")?[0];
                    if protocol > 5 {
                        return Err(self.bad(format!("pickle protocol {protocol} is newer than 5")));
                    }
                }
                // FRAME: only a hint for buffered readers; the frame's ops follow inline.
                0x95 => {
                    self.take(8, "FRAME")?;
                }
                b'.' => {
                    let root = self.pop()?;
                    let Machine { nodes, pos, ops, .. } = self;
                    return Ok(Loaded { root, nodes, end: pos, ops });
                }
                b'(' => {
                    if self.metastack.len() >= MAX_DEPTH {
                        return Err(self.bad(format!("MARKs nest more than {MAX_DEPTH} deep")));
                    }
                    self.metastack.push(std::mem::take(&mut self.stack));
                }
                // POP on an empty stack removes the mark instead, as pickle.py does.
                b'0' => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?.clone();
                    self.stack.push(top);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'I' => {
                    let value = match self.line("INT")? {
                        b"01" => Value::Bool(true),
                        b"00" => Value::Bool(false),
                        text => Value::Int(self.decimal(text)?),
                    };
                    self.stack.push(value);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.array("BININT")?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.take(1, "BININT1")?[0];
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array("BININT2")?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = self.take(1, "LONG1")?[0];
                    let digits = self.take(n.into(), "LONG1")?;
                    self.stack.push(long(digits));
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.array("LONG4")?);
                    // Checkpoints hold small integers; a 256-byte one is already absurd.
                    let n = usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= 256)
                        .ok_or_else(|| self.bad("a LONG4 of a bad size"))?;
                    let digits = self.take(n, "LONG4")?;
                    self.stack.push(long(digits));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array("BINFLOAT")?);
                    self.stack.push(Value::Float(v));
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' => {
                    // Python 2 strings (BINSTRING, SHORT_BINSTRING) load as text, as torch.load
                    // does with its default encoding.
                    let data = self.sized(op)?;
                    self.stack.push(Value::Str(String::from_utf8_lossy(data).into()));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let data = self.sized(op)?;
                    self.stack.push(Value::Bytes(data.into()));
                }
                b']' => self.push_node(Node::List(Vec::new())),
                b')' => self.push_node(Node::Tuple(Vec::new())),
                b'}' => self.push_node(Node::Dict(Vec::new())),
                0x8f => self.push_node(Node::Set(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::List(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Tuple(items));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_node(Node::Set(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let at = self.stack.len().checked_sub(n).ok_or_else(|| self.bad("TUPLE on too short a stack"))?;
                    let items = self.stack.split_off(at);
                    self.push_node(Node::Tuple(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push_node(Node::Dict(pairs));
                }
                b'a' => {
                    let item = self.pop()?;
                    self.extend(op, vec![item])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend(op, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend(op, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend(op, items)?;
                }
                b'c' => {
                    let global = self.inline_global("GLOBAL")?;
                    self.stack.push(Value::Global(global));
                }
                // INST (protocol 0): `module.name(*items above the mark)`, the global named
                // inline as GLOBAL names it, so it meets the same allow-list before any call.
                b'i' => {
                    let global = self.inline_global("INST")?;
                    let items = self.pop_mark()?;
                    let args = self.add_node(Node::Tuple(items));
                    let value = self.call(Value::Global(global), args)?;
                    self.stack.push(value);
                }
                // EXT1, EXT2, EXT4: a global named by its number in copyreg's extension registry,
                // which only the loading process knows, so no name can be checked: refused.
                0x82..=0x84 => {
                    let code = match op {
                        0x82 => i64::from(self.take(1, "EXT1")?[0]),
                        0x83 => i64::from(u16::from_le_bytes(self.array("EXT2")?)),
                        _ => i64::from(i32::from_le_bytes(self.array("EXT4")?)),
                    };
                    return Err(self.forbidden(&format!("the global registered as copyreg extension {code}")));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                        return Err(self.bad("STACK_GLOBAL of something other than two strings"));
                    };
                    let global = self.global(module, name)?;
                    self.stack.push(Value::Global(global));
                }
                // REDUCE and NEWOBJ: `callable(*args)` / `cls.__new__(cls, *args)`.
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.call(callable, args)?;
                    self.stack.push(value);
                }
                // BUILD sets attributes (`_metadata` on a state dict, a parameter's state):
                // nothing a tensor's bytes depend on.
                b'b' => {
                    self.pop()?;
                    self.top()?;
                }
                b'q' => {
                    let index = self.take(1, "BINPUT")?[0];
                    self.memo_put(index.into())?;
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.array("LONG_BINPUT")?);
                    self.memo_put(index)?;
                }
                b'p' => {
                    let index = self.memo_index("PUT")?;
                    self.memo_put(index)?;
                }
                0x94 => {
                    let index = u32::try_from(self.memo.len()).map_err(|_| self.bad("memo full"))?;
                    self.memo_put(index)?;
                }
                b'h' => {
                    let index = self.take(1, "BINGET")?[0];
                    self.memo_get(index.into())?;
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.array("LONG_BINGET")?);
                    self.memo_get(index)?;
                }
                b'g' => {
                    let index = self.memo_index("GET")?;
                    self.memo_get(index)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(&pid)?;
                    self.push_node(Node::Storage(Box::new(storage)));
                }
                b'P' => return Err(self.bad("a text persistent id (PyTorch writes tuples)")),
                _ => return Err(self.bad(format!("opcode 0x{op:02x} is not one PyTorch checkpoints use"))),
            }
        }
    }

    fn charge(&mut self, cost: usize) -> Result<(), ModelError> {
        self.ops = self.ops.saturating_add(cost);
        if self.ops > MAX_OPS {
            return Err(ModelError::new(
                self.path,
                ModelErrorKind::TooLarge(format!("the pickle takes more than {MAX_OPS} steps")),
            ));
        }
        Ok(())
    }

    /// APPEND(S), SETITEM(S) and ADDITEMS: add to the container under the items.
    fn extend(&mut self, op: u8, items: Vec<Value>) -> Result<(), ModelError> {
        let Some(&Value::Node(id)) = self.stack.last() else {
            return Err(self.bad(format!("opcode 0x{op:02x} with no container under it")));
        };
        // Ids only come from add_node, so indexing cannot miss.
        let problem = match (op, &mut self.nodes[id]) {
            (b'a' | b'e', Node::List(list)) => {
                list.extend(items);
                None
            }
            (0x90, Node::Set(set)) => {
                set.extend(items);
                None
            }
            (b's' | b'u', Node::Dict(_)) if !items.len().is_multiple_of(2) => {
                Some("a dict item with a key but no value")
            }
            (b's' | b'u', Node::Dict(dict)) => {
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    dict.push((key, value));
                }
                None
            }
            // pickle.py calls the object's own append/__setitem__: an opaque object keeps nothing.
            (_, Node::Opaque) => None,
            _ => Some("an item added to the wrong kind of value"),
        };
        match problem {
            Some(reason) => Err(self.bad(format!("opcode 0x{op:02x}: {reason}"))),
            None => Ok(()),
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, ModelError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.bad("a dict with a key but no value"));
        }
        let mut items = items.into_iter();
        let mut pairs = Vec::with_capacity(items.len() / 2);
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            pairs.push((key, value));
        }
        Ok(pairs)
    }

    fn memo_put(&mut self, index: u32) -> Result<(), ModelError> {
        let top = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(ModelError::new(
                self.path,
                ModelErrorKind::TooLarge(format!("the pickle memoizes more than {MAX_MEMO} values")),
            ));
        }
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), ModelError> {
        let value = self.memo.get(&index).cloned().ok_or_else(|| self.bad(format!("memo entry {index} is unset")))?;
        self.stack.push(value);
        Ok(())
    }

    fn memo_index(&mut self, what: &str) -> Result<u32, ModelError> {
        let text = self.line(what)?;
        let value = self.decimal(text)?;
        u32::try_from(value).map_err(|_| self.bad(format!("{what} of memo entry {value}")))
    }

    fn node(&self, value: &Value) -> Option<&Node> {
        match value {
            Value::Node(id) => self.nodes.get(*id),
            _ => None,
        }
    }

    fn add_node(&mut self, node: Node) -> Value {
        self.nodes.push(node);
        Value::Node(self.nodes.len() - 1)
    }

    fn push_node(&mut self, node: Node) {
        let value = self.add_node(node);
        self.stack.push(value);
    }

    fn pop(&mut self) -> Result<Value, ModelError> {
        self.stack.pop().ok_or_else(|| self.bad("stack underflow"))
    }

    fn top(&self) -> Result<&Value, ModelError> {
        self.stack.last().ok_or_else(|| self.bad("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, ModelError> {
        let below = self.metastack.pop().ok_or_else(|| self.bad("no MARK to pop to"))?;
        Ok(std::mem::replace(&mut self.stack, below))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        let bytes: &'a [u8] = self.bytes;
        let data = self.pos.checked_add(n).and_then(|end| bytes.get(self.pos..end)).ok_or_else(|| {
            ModelError::new(
                self.path,
                ModelErrorKind::Truncated(format!("the pickle ends inside {what} at byte {}", self.pos)),
            )
        })?;
        self.pos += n;
        Ok(data)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        let data = self.take(N, what)?;
        data.try_into().map_err(|_| self.bad(format!("a cut {what}")))
    }

    /// The bytes of a length-prefixed string or bytes opcode.
    fn sized(&mut self, op: u8) -> Result<&'a [u8], ModelError> {
        let n: u64 = match op {
            0x8c | b'C' | b'U' => self.take(1, "a short string")?[0].into(),
            b'X' | b'B' => u32::from_le_bytes(self.array("a string")?).into(),
            // BINSTRING's length is signed.
            b'T' => {
                u64::try_from(i32::from_le_bytes(self.array("a string")?)).map_err(|_| self.bad("a negative length"))?
            }
            _ => u64::from_le_bytes(self.array("a long string")?),
        };
        // Checked against the bytes left before anything is allocated.
        let n = usize::try_from(n).map_err(|_| self.bad("a string longer than memory"))?;
        self.take(n, "a string")
    }

    /// A text argument up to its newline (GLOBAL, INT, PUT, GET).
    fn line(&mut self, what: &str) -> Result<&'a [u8], ModelError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let n = rest.iter().position(|b| *b == b'\n').ok_or_else(|| {
            ModelError::new(self.path, ModelErrorKind::Truncated(format!("the pickle ends inside {what}")))
        })?;
        let line = self.take(n + 1, what)?;
        Ok(&line[..n])
    }

    fn decimal(&self, text: &[u8]) -> Result<i64, ModelError> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .ok_or_else(|| self.bad("a text integer that is not a 64-bit number"))
    }

    fn bad(&self, reason: impl std::fmt::Display) -> ModelError {
        ModelError::malformed(self.path, "PyTorch", format!("pickle byte {}: {reason}", self.pos))
    }
}

/// A little-endian two's-complement integer (LONG1, LONG4).
fn long(digits: &[u8]) -> Value {
    if digits.len() > 8 {
        return Value::BigInt(digits.into());
    }
    let fill = if digits.last().is_some_and(|b| b & 0x80 != 0) { 0xFF } else { 0 };
    let mut bytes = [fill; 8];
    bytes[..digits.len()].copy_from_slice(digits);
    Value::Int(i64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::assemble::{Pickle, reason, run};
    use super::*;
    use crate::tensors::DType;

    /// `python3`: a state dict pickled at protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE,
    /// STACK_GLOBAL) by the stdlib pickler, with stand-in classes named like torch's.
    const PROTOCOL_4: &[u8] = b"\x80\x04\x95o\x01\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\
        \x94\x93\x94)R\x94(\x8c\x0bconv.weight\x94\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94\x93\x94((\x8c\
        \x07storage\x94\x8c\x05torch\x94\x8c\x0cFloatStorage\x94\x93\x94\x8c\x010\x94\x8c\x03cpu\x94K\x06t\x94QK\x00K\
        \x02K\x03\x86\x94K\x03K\x01\x86\x94\x89h\x02)R\x94t\x94R\x94\x8c\x09conv.bias\x94h\x05\x8c\x12_rebuild_parame\
        ter\x94\x93\x94h\x07((h\x08h\x09\x8c\x0bHalfStorage\x94\x93\x94\x8c\x011\x94h\x0dK\x03t\x94QK\x00K\x03\x85\x94\
        K\x01\x85\x94\x89h\x02)R\x94t\x94R\x94\x88h\x02)R\x94\x87\x94R\x94\x8c\x0dconv.weight_t\x94h\x07((h\x08h\x0bh\
        \x0ch\x0dK\x06t\x94QK\x00K\x03K\x02\x86\x94K\x01K\x03\x86\x94\x89h\x02)R\x94t\x94R\x94u}\x94\x8c\x09_metadata\
        \x94h\x02)R\x94\x8c\x04conv\x94}\x94\x8c\x07version\x94K\x01sssb.";

    #[test]
    fn reads_a_protocol_4_state_dict_into_records() {
        let loaded = run(PROTOCOL_4).unwrap();
        assert_eq!(loaded.end, PROTOCOL_4.len());
        let Some(Node::Dict(items)) = loaded.node(&loaded.root) else { panic!("not a dict") };
        let names: Vec<_> = items.iter().map(|(k, _)| k.clone()).collect();
        let text = |s: &str| Value::Str(s.into());
        assert_eq!(names, [text("conv.weight"), text("conv.bias"), text("conv.weight_t")]);
        let Some(Node::Tensor(bias)) = loaded.node(&items[1].1) else { panic!("the parameter is not a tensor") };
        assert_eq!((bias.storage.dtype, &*bias.storage.key, bias.storage.numel), (DType::F16, "1", 3));
        assert_eq!((bias.shape.as_slice(), bias.strides.as_slice()), (&[3][..], &[1][..]));
        let Some(Node::Tensor(t)) = loaded.node(&items[2].1) else { panic!("not a tensor") };
        assert_eq!((t.shape.as_slice(), t.strides.as_slice(), t.storage_offset), (&[3, 2][..], &[1, 3][..], 0));
    }

    #[test]
    fn scalars_decode_as_python_does() {
        let bytes = Pickle::new()
            .op(b'(')
            .raw(b"I42\n")
            .raw(b"I01\n")
            .raw(b"\x8a\x01\xff") // LONG1 -1
            .raw(b"\x8a\x0al\xfc\x9cF\xf9\x20j\xa8P\x19") // PyTorch's legacy magic number
            .raw(b"J\xfe\xff\xff\xff")
            .raw(b"G\x3f\xf8\x00\x00\x00\x00\x00\x00")
            .raw(b"C\x02hi")
            .raw(b"U\x02ok")
            .op(b'N')
            .op(0x89)
            .op(b'l')
            .stop();
        let loaded = run(&bytes).unwrap();
        let Some(Node::List(items)) = loaded.node(&loaded.root) else { panic!("not a list") };
        let magic: &[u8] = b"l\xfc\x9cF\xf9\x20j\xa8P\x19";
        let expected = [
            Value::Int(42),
            Value::Bool(true),
            Value::Int(-1),
            Value::BigInt(magic.into()),
            Value::Int(-2),
            Value::Float(1.5),
            Value::Bytes(b"hi"[..].into()),
            Value::Str("ok".into()),
            Value::None,
            Value::Bool(false),
        ];
        assert_eq!(items.as_slice(), expected.as_slice());
    }

    #[test]
    fn broken_pickles_are_typed_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"\x80\x02.", "stack underflow"),
            (b"\x80\x02Nt.", "no MARK"),
            (b"\x80\x02h\x05.", "memo entry 5 is unset"),
            (b"\x80\x02]q\x00(Ne.", ""),
            (b"\x80\x02]K\x01K\x02s.", "wrong kind"),
            (b"\x80\x02}(K\x01u.", "key but no value"),
            (b"\x80\x02N\xff.", "opcode 0xff"),
            (b"\x80\x02(S'os'\n.", "opcode 0x53"),
            (b"\x80\x02N\x86.", "too short"),
            (b"\x80\x06N.", "protocol 6"),
            (b"\x80\x02NN\x93.", "STACK_GLOBAL"),
            (b"\x80\x02NNR.", "not an allowed global"),
            (b"\x80\x02ccollections\nOrderedDict\nNR.", "not a tuple"),
            (b"\x80\x02(X\x07\x00\x00\x00storagetQ.", "not a storage"),
            (b"\x80\x02K\x01\x8b\xff\xff\xff\xff.", "LONG4"),
            (b"\x80\x02\x8d\xff\xff\xff\xff\xff\xff\xff\xff.", "ends inside"),
            (b"\x80\x02\x8b\xff\xff\xff\x7f.", "LONG4"),
        ];
        for (bytes, expected) in cases {
            if expected.is_empty() {
                assert!(run(bytes).is_ok());
                continue;
            }
            let reason = reason(bytes);
            assert!(reason.contains(expected), "{reason} (wanted {expected})");
        }
        // Storage ids are only accepted in a checkpoint's main pickle.
        let pid = Pickle::new().storage("FloatStorage", "0", 1).stop();
        assert!(load(Path::new("x"), &pid, 0, false).is_err());
        assert!(run(&pid).is_ok());
    }

    #[test]
    fn inst_meets_the_allow_list_before_it_calls() {
        // `(X'touch pwned' i os\nsystem\n`: protocol 0's call with its global named inline.
        let system = Pickle::new().op(b'(').str("touch pwned").raw(b"ios\nsystem\n").stop();
        assert_eq!(run(&system).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal("os.system".into()));
        // An allowed global called this way builds what REDUCE builds.
        let dict = Pickle::new().op(b'(').raw(b"icollections\nOrderedDict\n").stop();
        let loaded = run(&dict).unwrap();
        assert_eq!(loaded.node(&loaded.root), Some(&Node::Dict(Vec::new())));
    }

    #[test]
    fn extension_codes_are_refused_as_globals_no_one_can_check() {
        for (bytes, code) in [(&b"\x82\x01"[..], 1), (b"\x83\x00\x01", 256), (b"\x84\xff\xff\xff\xff", -1)] {
            let pickle = Pickle::new().raw(bytes).op(b')').op(b'R').stop();
            let expected = format!("the global registered as copyreg extension {code}");
            assert_eq!(run(&pickle).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal(expected));
        }
    }

    #[test]
    fn every_cut_of_a_pickle_is_an_error() {
        for cut in 0..PROTOCOL_4.len() {
            assert!(run(&PROTOCOL_4[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn memo_and_dup_bombs_stay_small() {
        // Each level is a list of 200 references to the level below: 200^30 elements if copied.
        let mut pickle = Pickle::new();
        pickle.op(b']').put(0);
        for level in 1..=30u8 {
            pickle.op(b'(');
            for _ in 0..200 {
                pickle.get(level - 1);
            }
            pickle.op(b'l').put(level);
        }
        // DUPs then APPENDS onto a list that holds itself.
        pickle.op(b']').put(31).op(b'(');
        for _ in 0..1000 {
            pickle.get(31).op(b'2');
        }
        pickle.op(b'e');
        let bytes = pickle.stop();
        let loaded = run(&bytes).unwrap();
        assert!(loaded.nodes.len() < 40, "{} nodes", loaded.nodes.len());
        assert!(loaded.ops < 2 * bytes.len());
    }

    #[test]
    fn deep_nesting_is_refused_or_costs_no_recursion() {
        let mut marks = Pickle::new();
        marks.raw(&[b'('; MAX_DEPTH + 1]);
        assert!(reason(&marks.stop()).contains("nest"));
        // 200,000 nested 1-tuples: built and dropped without recursion.
        let mut tuples = Pickle::new();
        tuples.op(b'N').raw(&vec![0x85; 200_000]);
        let loaded = run(&tuples.stop()).unwrap();
        assert_eq!(loaded.nodes.len(), 200_000);
    }
}
