// What a person hands Kiln to process: files and folders dropped on the page (folders walked
// with `webkitGetAsEntry`, optionally recursively), files chosen with the file picker, an image
// pasted from the clipboard, and, inside the desktop app, OS paths from Tauri's drag-and-drop.
// Browser files travel as base64 uploads; desktop paths as paths the engine reads itself.

import type { InputItem } from "../generated/kiln";
import { inTauri } from "./client";

/** The images the engine reads (checked again there). */
const IMAGE_NAME = /\.(png|jpe?g|webp|tiff?|bmp)$/i;

/** One thing to submit: a browser file, a path on the engine's machine, or what was left out. */
export type Gathered =
  | { kind: "file"; file: File; name: string }
  | { kind: "path"; path: string; name: string }
  | { kind: "skip"; name: string; reason: string };

export interface Drop {
  items: Gathered[];
  /** The first dropped folder's name, for the batch. */
  folder?: string;
}

function fromFile(file: File, name = file.name): Gathered {
  if (IMAGE_NAME.test(file.name) || file.type.startsWith("image/")) return { kind: "file", file, name };
  return { kind: "skip", name, reason: "not an image Kiln reads (PNG, JPEG, WebP, TIFF, BMP)" };
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((ok, fail) => reader.readEntries(ok, fail));
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((ok, fail) => entry.file(ok, fail));
}

/** The files of a dropped folder: its own, and its sub-folders' when `recursive`. */
async function walk(folder: FileSystemDirectoryEntry, recursive: boolean, prefix: string, out: Gathered[]): Promise<void> {
  const reader = folder.createReader();
  // readEntries returns the listing in pieces until it returns none.
  for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
    for (const entry of batch.sort((a, b) => a.name.localeCompare(b.name))) {
      const name = `${prefix}${entry.name}`;
      if (entry.isFile) {
        const file = await entryFile(entry as FileSystemFileEntry);
        // Other files of a folder are passed over quietly, as the engine does for folders.
        if (IMAGE_NAME.test(file.name)) out.push({ kind: "file", file, name });
      } else if (entry.isDirectory && recursive) {
        await walk(entry as FileSystemDirectoryEntry, recursive, `${name}/`, out);
      }
    }
  }
}

/** What a browser drop holds. Entries must be taken before the first `await`: the browser
 * empties the DataTransfer once the event handler returns. */
export async function fromDataTransfer(data: DataTransfer, recursive: boolean): Promise<Drop> {
  const dropped: { entry: FileSystemEntry | null; file: File | null }[] = [];
  for (const item of Array.from(data.items ?? [])) {
    if (item.kind === "file") dropped.push({ entry: item.webkitGetAsEntry?.() ?? null, file: item.getAsFile() });
  }
  if (dropped.length === 0) dropped.push(...Array.from(data.files ?? []).map((file) => ({ entry: null, file })));

  const drop: Drop = { items: [] };
  for (const { entry, file } of dropped) {
    if (entry?.isDirectory) {
      drop.folder ??= entry.name;
      const before = drop.items.length;
      await walk(entry as FileSystemDirectoryEntry, recursive, `${entry.name}/`, drop.items);
      if (drop.items.length === before) {
        const reason = recursive ? "no images in this folder" : "no images in this folder (turn on Include sub-folders for theirs)";
        drop.items.push({ kind: "skip", name: entry.name, reason });
      }
    } else if (file) {
      drop.items.push(fromFile(file));
    }
  }
  return drop;
}

export function fromFileList(list: FileList | null): Drop {
  return { items: Array.from(list ?? []).map((f) => fromFile(f)) };
}

/** A pasted image, named after the time it was pasted. */
export function fromClipboard(data: DataTransfer | null): Drop {
  const items: Gathered[] = [];
  for (const item of Array.from(data?.items ?? [])) {
    const file = item.kind === "file" ? item.getAsFile() : null;
    if (!file || !file.type.startsWith("image/")) continue;
    const extension = file.type.split("/")[1]?.replace("jpeg", "jpg") ?? "png";
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    items.push({ kind: "file", file, name: file.name && file.name !== "image.png" ? file.name : `pasted-${stamp}.${extension}` });
  }
  return { items };
}

export function fromPaths(paths: string[]): Drop {
  return { items: paths.map((path) => ({ kind: "path", path, name: path.split(/[\\/]/).filter(Boolean).pop() ?? path })) };
}

/** A file's bytes as base64 (without the `data:` prefix), read by the browser natively. */
function base64(file: File): Promise<string> {
  return new Promise((ok, fail) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      ok(url.slice(url.indexOf(",") + 1));
    };
    reader.onerror = () => fail(reader.error);
    reader.readAsDataURL(file);
  });
}

/** The engine's input for one gathered file or path. */
export async function toInput(item: Extract<Gathered, { kind: "file" | "path" }>): Promise<InputItem> {
  if (item.kind === "path") return { from: "path", path: item.path };
  return { from: "upload", name: item.name.split("/").pop() ?? item.name, data_base64: await base64(item.file) };
}

export interface PathDropHandlers {
  onHover: (over: boolean) => void;
  onDrop: (paths: string[]) => void;
}

/** Inside the desktop app, files dropped on the window arrive as OS paths through Tauri.
 * Returns the function that stops listening; outside the app it does nothing. */
export function listenPathDrops(handlers: PathDropHandlers): () => void {
  if (!inTauri) return () => undefined;
  let stopped = false;
  const unlisten: (() => void)[] = [];
  void import("@tauri-apps/api/event").then(async ({ listen, TauriEvent }) => {
    const all = await Promise.all([
      listen<{ paths: string[] }>(TauriEvent.DRAG_DROP, (e) => {
        handlers.onHover(false);
        if (e.payload.paths.length) handlers.onDrop(e.payload.paths);
      }),
      listen(TauriEvent.DRAG_ENTER, () => handlers.onHover(true)),
      listen(TauriEvent.DRAG_LEAVE, () => handlers.onHover(false)),
    ]);
    if (stopped) all.forEach((u) => u());
    else unlisten.push(...all);
  });
  return () => {
    stopped = true;
    unlisten.forEach((u) => u());
  };
}
