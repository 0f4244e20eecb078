// Starts `kiln serve` on a free port with a fresh data folder for the browser tests, and stops
// it afterwards. The address it prints (with its token) reaches the tests as KILN_URL.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export default async function globalSetup(): Promise<() => Promise<void>> {
  const root = resolve(import.meta.dirname, "../..");
  const target = process.env.CARGO_TARGET_DIR ?? join(root, "target");
  const bin = process.env.KILN_BIN ?? join(target, "debug", "kiln");
  const data = mkdtempSync(join(tmpdir(), "kiln-e2e-"));
  // A runtime folder of its own, so EGL probing need not complain that none is set.
  const run = join(data, "run");
  mkdirSync(run, { mode: 0o700 });
  const child = spawn(bin, ["serve", "--port", "0"], {
    // HOME too: results go to ~/Pictures/Kiln by default, which must not be the real one.
    env: { ...process.env, KILN_DATA_DIR: data, XDG_RUNTIME_DIR: run, HOME: data },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((ok, fail) => {
    let out = "";
    const timer = setTimeout(() => fail(new Error(`kiln serve printed no address in 120 s: ${out}`)), 120_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const match = /serving on (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        ok(match[1]);
      }
    });
    child.on("exit", (code) => fail(new Error(`kiln serve exited with ${code}: ${out}`)));
  });
  process.env.KILN_URL = url;
  return async () => {
    child.kill("SIGINT");
  };
}
