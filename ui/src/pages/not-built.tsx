// Pages whose domain Kiln has not built yet say so plainly.

const PLANNED: Record<string, string> = {
  Memory: "a live VRAM map per device (other processes, each loaded model, Kiln's working memory, pool reserve, free) and the allocation ledger",
  Models: "every model file Kiln finds, its detected architecture, size, hash and whether it sits on disk, in RAM or in VRAM",
  Generate: "Stable Diffusion text-to-image and image-to-image with live previews",
};

export function NotBuiltPage({ page }: { page: string }) {
  return (
    <section class="page">
      <header class="page-head">
        <h1>{page}</h1>
      </header>
      <div class="empty">
        <p>This part of Kiln is not built yet.</p>
        <p class="muted">When it is, this page will show {PLANNED[page] ?? "its domain"}. The other pages work now.</p>
      </div>
    </section>
  );
}
