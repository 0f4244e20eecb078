//! What a checkpoint's pickle may call, and what each call builds instead of running: the
//! allow-list of globals, PyTorch's tensor rebuild functions (`torch/_utils.py`:
//! `_rebuild_tensor_v2`, `_rebuild_parameter`) and its persistent storage ids
//! (`torch/serialization.py`: `persistent_id` in `_save` and `_legacy_save`).

use std::rc::Rc;

use super::{MAX_DIMS, Machine, Node, Value};
use crate::error::{ModelError, ModelErrorKind};
use crate::tensors::DType;

/// The globals a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    /// `_rebuild_tensor`, written by PyTorch before 0.4.
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    Storage(DType),
    /// A dtype object or a numpy/builtins constructor found in training metadata: its result
    /// is kept as an opaque value.
    Opaque,
}

/// A storage named by a persistent id: `('storage', type, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    pub key: Rc<str>,
    pub dtype: DType,
    /// Elements of the whole storage.
    pub numel: u64,
    /// Legacy files may name a slice of a storage: `(offset, numel)` in elements.
    pub view: Option<(u64, u64)>,
}

/// A `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    pub storage: Storage,
    /// In elements.
    pub storage_offset: u64,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

/// The global `module.name` stands for, if it is allowed.
pub fn allowed_global(module: &str, name: &str) -> Option<Global> {
    const TORCH_DTYPES: &[&str] = &[
        "float32", "float", "float16", "half", "bfloat16", "float64", "double", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "bool",
    ];
    let storage = |name: &str| {
        Some(match name {
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::Bf16,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" | "UntypedStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    };
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        // Tensors saved from a GPU name `torch.cuda.FloatStorage` in legacy files.
        ("torch" | "torch.cuda", _) if storage(name).is_some() => Global::Storage(storage(name)?),
        ("torch", _) if TORCH_DTYPES.contains(&name) => Global::Opaque,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct") => Global::Opaque,
        ("numpy", "dtype" | "ndarray") => Global::Opaque,
        ("_codecs", "encode") => Global::Opaque,
        ("builtins" | "__builtin__", "set" | "frozenset" | "slice") => Global::Opaque,
        // Stable Diffusion .ckpt files trained with PyTorch Lightning keep the checkpoint
        // callback's saved settings; the class is only named, never constructed.
        (
            "pytorch_lightning.callbacks.model_checkpoint" | "lightning.pytorch.callbacks.model_checkpoint",
            "ModelCheckpoint",
        ) => Global::Opaque,
        _ => return None,
    })
}

impl Machine<'_> {
    pub(super) fn global(&self, module: &str, name: &str) -> Result<Global, ModelError> {
        allowed_global(module, name).ok_or_else(|| self.forbidden(&format!("{module}.{name}")))
    }

    /// The global GLOBAL and INST name inline: a module line and a name line.
    pub(super) fn inline_global(&mut self, what: &str) -> Result<Global, ModelError> {
        let module = String::from_utf8_lossy(self.line(what)?).into_owned();
        let name = String::from_utf8_lossy(self.line(what)?).into_owned();
        self.global(&module, &name)
    }

    /// The refusal of a global, named as the file names it but safe to print: the name is the
    /// attacker's text and ends up in a terminal or a log, so control characters (escape
    /// sequences, newlines) and the invisible marks that reorder or hide text (bidi overrides,
    /// zero-width characters) are written as `\u{..}` escapes.
    pub(super) fn forbidden(&self, what: &str) -> ModelError {
        let invisible = |c: char| {
            c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
        };
        let shown = what.chars().map(|c| if invisible(c) { c.escape_default().to_string() } else { c.to_string() });
        ModelError::new(self.path, ModelErrorKind::ForbiddenGlobal(shown.collect()))
    }

    pub(super) fn call(&mut self, callable: Value, args: Value) -> Result<Value, ModelError> {
        let Value::Global(global) = callable else {
            return Err(self.bad("REDUCE of something that is not an allowed global"));
        };
        let args = match self.node(&args) {
            Some(Node::Tuple(items)) => items.clone(),
            _ => return Err(self.bad("REDUCE arguments that are not a tuple")),
        };
        self.charge(args.len())?;
        let node = match global {
            Global::OrderedDict => Node::Dict(self.ordered_dict(&args)?),
            Global::RebuildTensorV2 | Global::RebuildTensor => Node::Tensor(Box::new(self.tensor(&args)?)),
            // A Parameter is its data tensor (requires_grad and hooks do not change the bytes).
            Global::RebuildParameter | Global::RebuildParameterWithState => match args.first() {
                Some(data @ Value::Node(_)) if matches!(self.node(data), Some(Node::Tensor(_))) => {
                    return Ok(data.clone());
                }
                _ => return Err(self.bad("_rebuild_parameter of something that is not a tensor")),
            },
            Global::Storage(_) | Global::Opaque => Node::Opaque,
        };
        Ok(self.add_node(node))
    }

    /// `OrderedDict()` or `OrderedDict([(key, value), ...])`.
    fn ordered_dict(&mut self, args: &[Value]) -> Result<Vec<(Value, Value)>, ModelError> {
        let items = match args {
            [] => return Ok(Vec::new()),
            [list] => match self.node(list) {
                Some(Node::List(items) | Node::Tuple(items)) => items.clone(),
                _ => return Err(self.bad("OrderedDict of something that is not a list of pairs")),
            },
            _ => return Err(self.bad("OrderedDict with more than one argument")),
        };
        self.charge(items.len())?;
        let mut pairs = Vec::new();
        for item in &items {
            match self.node(item) {
                Some(Node::List(pair) | Node::Tuple(pair)) if pair.len() == 2 => {
                    pairs.push((pair[0].clone(), pair[1].clone()));
                }
                _ => return Err(self.bad("OrderedDict of something that is not a list of pairs")),
            }
        }
        Ok(pairs)
    }

    /// `(storage, storage_offset, size, stride, ...)`.
    fn tensor(&mut self, args: &[Value]) -> Result<Tensor, ModelError> {
        let [storage, offset, size, stride, ..] = args else {
            return Err(self.bad("_rebuild_tensor with fewer than four arguments"));
        };
        let Some(Node::Storage(storage)) = self.node(storage) else {
            return Err(self.bad("_rebuild_tensor of something that is not a storage"));
        };
        let storage = Storage::clone(storage);
        let storage_offset = match offset {
            Value::Int(v) => u64::try_from(*v).map_err(|_| self.bad("a negative storage offset"))?,
            _ => return Err(self.bad("a storage offset that is not an integer")),
        };
        let shape = self.dims(size, "size")?;
        let strides = self.dims(stride, "stride")?;
        if shape.len() != strides.len() {
            return Err(self.bad(format!("a tensor with {} sizes but {} strides", shape.len(), strides.len())));
        }
        Ok(Tensor { storage, storage_offset, shape, strides })
    }

    fn dims(&mut self, value: &Value, what: &str) -> Result<Vec<usize>, ModelError> {
        let Some(Node::Tuple(items) | Node::List(items)) = self.node(value) else {
            return Err(self.bad(format!("a tensor {what} that is not a tuple")));
        };
        if items.len() > MAX_DIMS {
            return Err(self.bad(format!("a tensor with more than {MAX_DIMS} dimensions")));
        }
        let dims = items
            .iter()
            .map(|v| match v {
                Value::Int(v) => usize::try_from(*v).ok(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.bad(format!("a tensor {what} that is negative or not an integer")))?;
        self.charge(dims.len())?;
        Ok(dims)
    }

    /// `('storage', storage_type, key, location, numel[, view_metadata])`.
    pub(super) fn persistent_load(&self, pid: &Value) -> Result<Storage, ModelError> {
        if !self.persistent {
            return Err(self.bad("a persistent id outside a checkpoint's main object"));
        }
        let Some(Node::Tuple(fields)) = self.node(pid) else {
            return Err(self.bad("a persistent id that is not a tuple"));
        };
        let (tag, kind, key, numel, view) = match fields.as_slice() {
            [tag, kind, key, _location, numel] => (tag, kind, key, numel, None),
            [tag, kind, key, _location, numel, view] => (tag, kind, key, numel, Some(view)),
            _ => return Err(self.bad("a persistent id that is not a storage")),
        };
        match tag {
            Value::Str(s) if &**s == "storage" => {}
            Value::Bytes(b) if &**b == b"storage" => {}
            _ => return Err(self.bad("a persistent id that is not a storage")),
        }
        let Value::Global(Global::Storage(dtype)) = kind else {
            return Err(self.bad("a storage whose type is not a torch storage class"));
        };
        let key: Rc<str> = match key {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string().into(),
            _ => return Err(self.bad("a storage key that is not text")),
        };
        let count = |v: &Value| match v {
            Value::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        };
        let numel = count(numel).ok_or_else(|| self.bad("a storage size that is negative or not an integer"))?;
        let view = match view {
            None | Some(Value::None) => None,
            Some(view) => {
                let parsed = match self.node(view) {
                    Some(Node::Tuple(parts)) => match parts.as_slice() {
                        [_view_key, offset, size] => count(offset).zip(count(size)),
                        _ => None,
                    },
                    _ => None,
                };
                Some(parsed.ok_or_else(|| self.bad("a storage view that is not (key, offset, size)"))?)
            }
        };
        Ok(Storage { key, dtype: *dtype, numel, view })
    }
}

#[cfg(test)]
mod tests {
    use super::super::assemble::{Pickle, reason, run};
    use super::*;

    #[test]
    fn code_globals_are_refused_as_soon_as_they_are_read() {
        let forbidden = [
            ("os", "system"),
            ("posix", "system"),
            ("nt", "system"),
            ("subprocess", "Popen"),
            ("builtins", "eval"),
            ("builtins", "exec"),
            ("__builtin__", "eval"),
            ("builtins", "getattr"),
            ("torch", "load"),
            ("torch.serialization", "_get_layout"),
            ("collections", "namedtuple"),
            ("numpy", "load"),
            ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ];
        for (module, name) in forbidden {
            let expected = ModelErrorKind::ForbiddenGlobal(format!("{module}.{name}"));
            // `module.name('echo pwned')`, then bytes that would be an error of their own.
            let reduce =
                Pickle::new().global(module, name).op(b'(').str("echo pwned").op(b't').op(b'R').raw(b"\xff").stop();
            assert_eq!(run(&reduce).unwrap_err().kind, expected);
            let stacked = Pickle::new().stack_global(module, name).raw(b"\xff").stop();
            assert_eq!(run(&stacked).unwrap_err().kind, expected);
        }
        let truncated_after = Pickle::new().global("os", "system").raw(b"X\xff\xff\xff\xff").stop();
        assert_eq!(run(&truncated_after).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal("os.system".into()));
    }

    #[test]
    fn a_refused_name_prints_without_its_control_characters() {
        // A terminal escape that would clear the screen, a right-to-left override that would
        // show `metsys.so` backwards, a newline STACK_GLOBAL can carry; fullwidth letters are
        // printable and kept (Python would not import them as `os` either).
        let cases = [
            ("os\u{1b}[2J", "system", "os\\u{1b}[2J.system"),
            ("\u{202e}os", "system", "\\u{202e}os.system"),
            ("os\n", "sys\u{200b}tem", "os\\n.sys\\u{200b}tem"),
            ("ｏｓ", "system", "ｏｓ.system"),
        ];
        for (module, name, shown) in cases {
            let bytes = Pickle::new().stack_global(module, name).stop();
            assert_eq!(run(&bytes).unwrap_err().kind, ModelErrorKind::ForbiddenGlobal(shown.into()), "{shown}");
        }
    }

    #[test]
    fn allowed_globals_are_data_only() {
        assert_eq!(allowed_global("torch", "BFloat16Storage"), Some(Global::Storage(DType::Bf16)));
        assert_eq!(allowed_global("torch.cuda", "HalfStorage"), Some(Global::Storage(DType::F16)));
        assert_eq!(allowed_global("numpy.core.multiarray", "scalar"), Some(Global::Opaque));
        assert_eq!(allowed_global("torch", "Tensor"), None);
        assert_eq!(allowed_global("torch.cuda", "float32"), None);
        assert_eq!(
            allowed_global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
            Some(Global::Opaque)
        );
        assert_eq!(allowed_global("pytorch_lightning.trainer", "Trainer"), None);
        // An opaque call's result takes items without running anything.
        let bytes = Pickle::new().global("builtins", "set").op(b')').op(b'R').op(b'(').int(1).op(b'e').stop();
        let loaded = run(&bytes).unwrap();
        assert_eq!(loaded.node(&loaded.root), Some(&Node::Opaque));
    }

    #[test]
    fn huge_shapes_and_negative_sizes_are_refused() {
        let negative = Pickle::new().tensor("FloatStorage", "0", 4, 0, &[-1, 4], &[4, 1]).stop();
        assert!(reason(&negative).contains("negative"));
        let offset = Pickle::new().tensor("FloatStorage", "0", 4, -3, &[4], &[1]).stop();
        assert!(reason(&offset).contains("negative storage offset"));
        let dims = vec![1; MAX_DIMS + 1];
        let wide = Pickle::new().tensor("FloatStorage", "0", 4, 0, &dims, &dims).stop();
        assert!(reason(&wide).contains("dimensions"));
        let mismatched = Pickle::new().tensor("FloatStorage", "0", 4, 0, &[2, 2], &[1]).stop();
        assert!(reason(&mismatched).contains("strides"));
    }
}
