// The Queue page's sessions: named groups of jobs started, paused, resumed and cancelled
// together, each with its progress; a form to make one; clicking a session shows only its jobs.
// Jobs join a session when queued with it (the Upscale page's Session setting).

import { useState } from "preact/hooks";
import type { Session, SessionAction } from "../generated/kiln";
import { call } from "../api/client";
import { reloadQueue } from "../api/queue";
import { ErrorNote } from "../components/common";
import { ProgressBar, useAction } from "../components/jobs";

const ACTIONS: Record<Session["state"], SessionAction[]> = {
  idle: ["start", "cancel"],
  active: ["pause", "cancel"],
  paused: ["resume", "cancel"],
  cancelled: [],
};

const STATE_LABEL: Record<Session["state"], string> = {
  idle: "Collecting",
  active: "Active",
  paused: "Paused",
  cancelled: "Cancelled",
};

interface Props {
  sessions: Session[];
  /** The session whose jobs alone are shown, if any. */
  filter: number | null;
  onFilter: (id: number | null) => void;
}

export function SessionsPanel({ sessions, filter, onFilter }: Props) {
  const actions = useAction();
  const [name, setName] = useState("");
  const [start, setStart] = useState(true);
  const control = (id: number, action: SessionAction) => actions.run(`${id}`, () => call("sessions.control", { id, action }).then(reloadQueue));

  return (
    <div class="sessions" aria-label="Sessions">
      <div class="row">
        <h3 class="inline-heading">Sessions</h3>
        {filter != null && (
          <button class="chip chip-on" onClick={() => onFilter(null)} title="Show every job">
            Only {sessions.find((s) => s.id === filter)?.name ?? `session ${filter}`} ✕
          </button>
        )}
        <span class="spacer" />
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void actions.run("create", async () => {
              await call("sessions.create", { name: name.trim(), start });
              setName("");
              await reloadQueue();
            });
          }}
        >
          <input class="search" placeholder="New session name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} aria-label="New session name" />
          <label class="small muted">
            <input type="checkbox" checked={start} onChange={(e) => setStart((e.target as HTMLInputElement).checked)} /> start now
          </label>
          <button class="button small" disabled={!name.trim() || actions.busy === "create"}>
            New session
          </button>
        </form>
      </div>
      {actions.error && <ErrorNote error={actions.error} />}
      {sessions.length === 0 ? (
        <p class="muted small">
          No sessions. A session groups jobs you start, pause and cancel together; one that has not started collects jobs without running them.
        </p>
      ) : (
        <ul class="session-list">
          {sessions.map((s) => (
            <li class={`session${filter === s.id ? " selected" : ""}`} data-session={s.id}>
              <button class="link" onClick={() => onFilter(filter === s.id ? null : s.id)} title="Show only this session's jobs">
                {s.name}
              </button>
              <span class={`badge session-${s.state}`}>{STATE_LABEL[s.state]}</span>
              <ProgressBar value={s.progress} state="batch" label={`Progress of session ${s.name}`} />
              <span class="muted small figures-inline">
                {s.done}/{s.jobs} done
              </span>
              <span class="spacer" />
              {ACTIONS[s.state].map((a) => (
                <button class={`button small${a === "cancel" ? " button-quiet" : ""}`} disabled={actions.busy === `${s.id}`} onClick={() => control(s.id, a)}>
                  {a[0].toUpperCase() + a.slice(1)}
                </button>
              ))}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
