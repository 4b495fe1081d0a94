// Small pieces every view uses: loading data, showing errors, fields with labels.
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export interface Loaded<T> {
  data?: T;
  error?: string;
  loading: boolean;
  reload: () => void;
}

export function useData<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, loading: false }),
      (e: unknown) => live && setState({ error: messageOf(e), loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return `${e.problem.title}${e.problem.detail ? `: ${e.problem.detail}` : ""}`;
  return e instanceof Error ? e.message : String(e);
}

export function Status<T>(props: { of: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (props.of.error) return <Alert>{props.of.error}</Alert>;
  if (props.of.data === undefined) return <p aria-busy="true">Loading…</p>;
  return <>{props.children(props.of.data)}</>;
}

export function Alert(props: { children: ComponentChildren }) {
  return (
    <p class="alert" role="alert">
      {props.children}
    </p>
  );
}

let nextId = 0;
export function useId(prefix: string): string {
  const [id] = useState(() => `${prefix}-${++nextId}`);
  return id;
}

export function Field(props: { label: string; children: (id: string) => ComponentChildren; hint?: string }) {
  const id = useId("field");
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id)}
      {props.hint && <small>{props.hint}</small>}
    </div>
  );
}

export function Select(props: {
  label: string;
  value: string;
  options: [string, string][];
  onChange: (v: string) => void;
}) {
  return (
    <Field label={props.label}>
      {(id) => (
        <select id={id} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
          {props.options.map(([v, text]) => (
            <option key={v} value={v}>
              {text}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

export function DateInput(props: { label: string; value: string; onChange: (v: string) => void }) {
  return (
    <Field label={props.label}>
      {(id) => (
        <input
          id={id}
          type="date"
          value={props.value}
          onChange={(e) => props.onChange((e.target as HTMLInputElement).value)}
        />
      )}
    </Field>
  );
}
