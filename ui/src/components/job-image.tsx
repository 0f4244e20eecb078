// Images of jobs: thumbnails (made once by the engine as WebP, kept here for the session and
// fetched only when scrolled into view) and full images for the comparison and the large view
// (as blob: URLs, released when no longer shown).

import { useEffect, useRef, useState } from "preact/hooks";
import type { ImageData as JobImage, ImageKind } from "../generated/kiln";
import { call, KilnError } from "../api/client";

const thumbnails = new Map<string, Promise<JobImage>>();

/** A job's thumbnail; `version` (the job's finish time) tells apart results of a retried job. */
export function thumbnail(id: number, which: ImageKind, side: number, version = 0): Promise<JobImage> {
  const key = `${id}:${which}:${side}:${version}`;
  let image = thumbnails.get(key);
  if (!image) {
    image = call("jobs.image", { id, which, max_side: side });
    thumbnails.set(key, image);
    // A failure is not kept: the next look tries again.
    image.catch(() => thumbnails.delete(key));
  }
  return image;
}

export function dataUrl(image: JobImage): string {
  return `data:${image.mime};base64,${image.data_base64}`;
}

function blobUrl(image: JobImage): string {
  const text = atob(image.data_base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return URL.createObjectURL(new Blob([bytes], { type: image.mime }));
}

/** Whether the element has come (nearly) on screen; true at once when not `enabled`. */
function useVisible(ref: { current: Element | null }, enabled: boolean): boolean {
  const [visible, setVisible] = useState(!enabled);
  useEffect(() => {
    if (!enabled || visible || !ref.current) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          setVisible(true);
          observer.disconnect();
        }
      },
      { rootMargin: "200px" },
    );
    observer.observe(ref.current);
    return () => observer.disconnect();
  }, [enabled, visible]);
  return visible;
}

interface ThumbProps {
  id: number;
  which: ImageKind;
  /** The longest side asked of the engine, in image pixels. */
  side: number;
  /** The box's side on screen; `side` unless given (ask twice the box for sharp high-DPI thumbnails). */
  box?: number;
  version?: number;
  alt: string;
  /** Fetch only once scrolled into view. */
  lazy?: boolean;
  class?: string;
}

/** A job's thumbnail in a square box; a blank box until it arrives. */
export function Thumb({ id, which, side, box, version, alt, lazy = true, class: className }: ThumbProps) {
  const element = useRef<HTMLSpanElement>(null);
  const visible = useVisible(element, lazy);
  const [image, setImage] = useState<JobImage | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!visible) return;
    let live = true;
    setError(null);
    thumbnail(id, which, side, version).then(
      (i) => live && setImage(i),
      (e) => live && setError(KilnError.from(e).message),
    );
    return () => void (live = false);
  }, [id, which, side, version, visible]);
  return (
    <span ref={element} class={`thumb ${className ?? ""}`} style={{ width: `${box ?? side}px`, height: `${box ?? side}px` }} title={error ?? undefined}>
      {image ? <img src={dataUrl(image)} alt={alt} width={image.width} height={image.height} /> : error ? <span class="thumb-missing">no preview</span> : null}
    </span>
  );
}

export interface FullImage {
  url: string;
  width: number;
  height: number;
}

/** A job's input or result at full size, or null while it loads; errors come back as KilnError. */
export function useFullImage(id: number | undefined, which: ImageKind, version = 0): [FullImage | null, KilnError | null] {
  const [image, setImage] = useState<FullImage | null>(null);
  const [error, setError] = useState<KilnError | null>(null);
  useEffect(() => {
    setImage(null);
    setError(null);
    if (id == null) return;
    let live = true;
    let url: string | null = null;
    call("jobs.image", { id, which }).then(
      (i) => {
        if (!live) return;
        url = blobUrl(i);
        setImage({ url, width: i.width, height: i.height });
      },
      (e) => live && setError(KilnError.from(e)),
    );
    return () => {
      live = false;
      if (url) URL.revokeObjectURL(url);
    };
  }, [id, which, version]);
  return [image, error];
}
