//! TypeScript for the UI, generated from the Rust types with `ts-rs`: every operation's input
//! and output, the event and error types, and a table of operations the client is typed by.
//!
//! `cargo run -p kiln-engine --bin kiln-typegen` writes `ui/src/generated/kiln.ts`; the test at
//! the bottom fails when that file differs from what the Rust types say.

use std::any::TypeId;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use ts_rs::{TS, TypeVisitor};

use super::{OPERATIONS, OperationKind, register_types, signatures};
use crate::error::ApiError;
use crate::events::KilnEvent;

/// Where the generated file lives, from the engine crate's directory.
pub fn output_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/generated/kiln.ts")
}

fn config() -> ts_rs::Config {
    // JSON numbers arrive in JavaScript as `number`; byte counts stay below 2^53.
    ts_rs::Config::new().with_large_int("number")
}

/// Declarations collected by walking types and their dependencies.
pub struct TypeSet {
    cfg: ts_rs::Config,
    seen: HashSet<TypeId>,
    /// Declarations by TypeScript name, so output order does not depend on visiting order.
    declarations: BTreeMap<String, String>,
}

impl TypeSet {
    fn new() -> Self {
        Self { cfg: config(), seen: HashSet::new(), declarations: BTreeMap::new() }
    }

    pub fn add<T: TS + 'static + ?Sized>(&mut self) {
        if !self.seen.insert(TypeId::of::<T>()) {
            return;
        }
        if T::output_path().is_some() {
            let ident = T::ident(&self.cfg);
            if !self.declarations.contains_key(&ident) {
                let docs = T::docs().unwrap_or_default();
                self.declarations.insert(ident, format!("{docs}export {}", T::decl(&self.cfg)));
            }
        }
        T::visit_dependencies(self);
        T::visit_generics(self);
    }
}

impl TypeVisitor for TypeSet {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        self.add::<T>();
    }
}

/// The whole generated file.
pub fn render() -> String {
    let mut types = TypeSet::new();
    register_types(&mut types);
    types.add::<KilnEvent>();
    types.add::<ApiError>();
    types.add::<OperationKind>();

    let mut out = String::from(
        "// Generated from Kiln's Rust types by `cargo run -p kiln-engine --bin kiln-typegen`.\n\
         // Do not edit: change the Rust types and run the generator again.\n\n",
    );
    for declaration in types.declarations.values() {
        out.push_str(declaration);
        out.push_str("\n\n");
    }
    let cfg = config();
    out.push_str("/** Every operation: its kind, input and output. */\nexport type Operations = {\n");
    for ((name, input, output), op) in signatures(&cfg).into_iter().zip(OPERATIONS) {
        let kind = match op.kind {
            OperationKind::Query => "query",
            OperationKind::Mutation => "mutation",
        };
        for line in op.doc.lines() {
            out.push_str(&format!("  /** {line} */\n"));
        }
        out.push_str(&format!("  \"{name}\": {{ kind: \"{kind}\"; input: {input}; output: {output} }};\n"));
    }
    out.push_str("};\n\n/** The kind of each operation, for the HTTP client to pick GET or POST. */\n");
    out.push_str("export const OPERATION_KINDS: { [K in keyof Operations]: Operations[K][\"kind\"] } = {\n");
    for op in OPERATIONS {
        let kind = if op.kind == OperationKind::Query { "query" } else { "mutation" };
        out.push_str(&format!("  \"{}\": \"{kind}\",\n", op.name));
    }
    out.push_str("};\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_typescript_is_fresh() {
        let expected = render();
        let path = output_path();
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is stale: run `cargo run -p kiln-engine --bin kiln-typegen` and commit the result",
            path.display()
        );
    }

    #[test]
    fn every_operation_and_the_error_shape_are_declared() {
        let text = render();
        for op in OPERATIONS {
            assert!(text.contains(&format!("\"{}\":", op.name)), "{} missing", op.name);
        }
        let error = &text[text.find("export type ApiError = {").expect("ApiError is declared")..];
        let error = &error[..error.find("};").unwrap()];
        for field in ["code: ErrorCode", "message: string", "details?: JsonValue"] {
            assert!(error.contains(field), "ApiError lacks {field}: {error}");
        }
        assert!(text.contains("export type KilnEvent ="));
        assert!(!text.contains("bigint"));
    }
}
