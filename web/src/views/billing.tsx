// Billing self-service (billing:view to read, billing:manage to change): plan and price, a plan change with its
// proration preview confirmed before it applies, invoices with their PDFs, the payment method, the credit balance.
import { useState } from "preact/hooks";
import { call, can, get, getBlob, query } from "../api";
import { download } from "../charts";
import { day, integer, money } from "../format";
import { Alert, Select, Status, messageOf, useData } from "../ui";

interface Account {
  currency: string;
  payment_method: string;
  credit_balance: number;
  legal_name: string;
  email: string;
}

interface Plan {
  id: string;
  code: string;
  name: string;
  tier: string;
  active: boolean;
  currency: string;
  interval: string;
  base_price: number;
  included_seats: number;
  seat_price: number;
}

interface Subscription {
  id: string;
  plan_id: string;
  status: string;
  seats: number;
  current_period_start: string | null;
  current_period_end: string | null;
  cancel_at_period_end: boolean;
}

interface InvoiceLine {
  description: string;
  amount: number;
  proration: boolean;
}

interface Invoice {
  id: string;
  number: string | null;
  status: string;
  currency: string;
  total: number;
  amount_due: number;
  amount_remaining: number;
  created_at: string;
  lines: InvoiceLine[];
}

interface Preview {
  currency: string;
  proration_mode: string;
  proration_date: string;
  credit: number;
  charge: number;
  net: number;
  invoice: Invoice | null;
}

// The payment provider's test cards (src/billing/payments/gateway.cpp).
const testCards: [string, string][] = [
  ["pm_card_visa", "Visa (succeeds)"],
  ["pm_card_mastercard", "Mastercard (succeeds)"],
  ["pm_card_chargeDeclined", "Declined card"],
  ["pm_card_chargeDeclinedInsufficientFunds", "Insufficient funds"],
  ["pm_card_chargeDeclinedExpiredCard", "Expired card"],
];

function price(p: Plan): string {
  const seats = p.seat_price > 0 ? ` + ${money(p.seat_price, p.currency)} per seat over ${integer(p.included_seats)}` : "";
  return `${money(p.base_price, p.currency)} per ${p.interval === "annual" ? "year" : p.interval === "quarterly" ? "quarter" : "month"}${seats}`;
}

function PlanChange(props: { sub: Subscription; plans: Plan[]; current?: Plan; onDone: () => void }) {
  const choices = props.plans.filter((p) => p.active && p.id !== props.sub.plan_id && p.currency === props.current?.currency);
  const [target, setTarget] = useState(choices[0]?.code ?? "");
  const [preview, setPreview] = useState<Preview | undefined>();
  const [message, setMessage] = useState("");
  if (choices.length === 0) return <p>No other plan is available.</p>;
  const chosen = choices.find((p) => p.code === target);
  return (
    <form
      class="card"
      aria-labelledby="change-h"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await call("PATCH", `/v1/subscriptions/${props.sub.id}`, { plan: target });
          setPreview(undefined);
          setMessage(`Changed to ${chosen?.name ?? target}.`);
          props.onDone();
        } catch (err) {
          setMessage(messageOf(err));
        }
      }}
    >
      <h2 id="change-h">Change plan</h2>
      <Select
        label="New plan"
        value={target}
        onChange={(v) => {
          setTarget(v);
          setPreview(undefined);
        }}
        options={choices.map((p) => [p.code, `${p.name} — ${price(p)}`])}
      />
      <p class="actions">
        <button
          type="button"
          onClick={async () => {
            try {
              setPreview(await get<Preview>(`/v1/subscriptions/${props.sub.id}/preview${query({ plan: target })}`));
              setMessage("");
            } catch (err) {
              setMessage(messageOf(err));
            }
          }}
        >
          Preview change
        </button>
        <button type="submit" disabled={!preview}>
          Confirm change
        </button>
      </p>
      {preview && (
        <div class="preview" aria-live="polite" data-preview-net={preview.net}>
          <h3>What changes now</h3>
          <dl class="facts">
            <dt>Credit for the unused time</dt>
            <dd>{money(preview.credit, preview.currency)}</dd>
            <dt>Charge for the new plan's remaining time</dt>
            <dd>{money(preview.charge, preview.currency)}</dd>
            <dt>Net</dt>
            <dd>{money(preview.net, preview.currency)}</dd>
            <dt>Proration</dt>
            <dd>
              {preview.proration_mode}, as of {day(preview.proration_date)}
            </dd>
            {preview.invoice && (
              <>
                <dt>Invoiced now</dt>
                <dd data-preview-due={preview.invoice.amount_due}>{money(preview.invoice.amount_due, preview.currency)}</dd>
              </>
            )}
          </dl>
          {preview.invoice && (
            <ul>
              {preview.invoice.lines.map((l, i) => (
                <li key={i}>
                  {l.description}: {money(l.amount, preview.currency)}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <p role="status">{message}</p>
    </form>
  );
}

function PaymentMethod({ account, onDone }: { account: Account; onDone: () => void }) {
  const [method, setMethod] = useState(account.payment_method || "pm_card_visa");
  const [message, setMessage] = useState("");
  return (
    <form
      class="card"
      aria-labelledby="pm-h"
      onSubmit={async (e) => {
        e.preventDefault();
        try {
          await call("PUT", "/v1/billing-account", { payment_method: method });
          setMessage("Payment method saved.");
          onDone();
        } catch (err) {
          setMessage(messageOf(err));
        }
      }}
    >
      <h2 id="pm-h">Payment method</h2>
      <p>Current: {account.payment_method || "none"}</p>
      <Select label="Test card" value={method} onChange={setMethod} options={testCards} />
      <button type="submit">Save payment method</button>
      <p role="status">{message}</p>
    </form>
  );
}

function Invoices() {
  const list = useData(() => get<{ data: Invoice[] }>("/v1/invoices"), []);
  const [error, setError] = useState("");
  return (
    <section class="card" aria-labelledby="inv-h">
      <h2 id="inv-h">Invoices</h2>
      {error && <Alert>{error}</Alert>}
      <Status of={list}>
        {(r) => (
          <div class="table-scroll">
            <table>
              <caption class="visually-hidden">Invoices</caption>
              <thead>
                <tr>
                  <th scope="col">Number</th>
                  <th scope="col">Date</th>
                  <th scope="col">Status</th>
                  <th scope="col">Total</th>
                  <th scope="col">Due</th>
                  <th scope="col">PDF</th>
                </tr>
              </thead>
              <tbody>
                {r.data.map((i) => (
                  <tr key={i.id}>
                    <th scope="row">{i.number ?? "draft"}</th>
                    <td>{day(i.created_at)}</td>
                    <td>{i.status}</td>
                    <td class="num">{money(i.total, i.currency)}</td>
                    <td class="num">{money(i.amount_remaining, i.currency)}</td>
                    <td>
                      {i.number ? (
                        <button
                          type="button"
                          class="link"
                          onClick={async () => {
                            try {
                              download(`${i.number}.pdf`, await getBlob(`/v1/invoices/${i.id}/download?format=pdf`));
                            } catch (e) {
                              setError(messageOf(e));
                            }
                          }}
                        >
                          Download {i.number}.pdf
                        </button>
                      ) : (
                        "—"
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Status>
    </section>
  );
}

export function BillingView() {
  const account = useData(() => get<Account>("/v1/billing-account"), []);
  const subs = useData(() => get<{ data: Subscription[] }>("/v1/subscriptions"), []);
  const plans = useData(() => get<{ data: Plan[] }>("/v1/plans"), []);
  const manage = can("billing:manage");
  return (
    <>
      <h1>Billing</h1>
      <Status of={account}>
        {(a) => (
          <div class="kpis">
            <div class="kpi card">
              <div class="kpi-label">Credit balance</div>
              <div class="kpi-value" data-kpi="Credit balance">
                {money(a.credit_balance, a.currency)}
              </div>
            </div>
          </div>
        )}
      </Status>
      <Status of={subs}>
        {(s) => (
          <Status of={plans}>
            {(p) => {
              const sub = s.data.find((x) => x.status !== "cancelled") ?? s.data[0];
              if (!sub) return <p>No subscription.</p>;
              const current = p.data.find((x) => x.id === sub.plan_id);
              return (
                <>
                  <section class="card" aria-labelledby="plan-h">
                    <h2 id="plan-h">Current plan</h2>
                    <p class="plan-name" data-plan={current?.code}>
                      {current?.name ?? sub.plan_id} — {current ? price(current) : ""}
                    </p>
                    <p>
                      {sub.status}, {integer(sub.seats)} seats
                      {sub.current_period_end ? `, renews ${day(sub.current_period_end)}` : ""}
                      {sub.cancel_at_period_end ? " (cancels at period end)" : ""}
                    </p>
                  </section>
                  {manage && (
                    <PlanChange
                      sub={sub}
                      plans={p.data}
                      current={current}
                      onDone={() => {
                        subs.reload();
                        account.reload();
                      }}
                    />
                  )}
                </>
              );
            }}
          </Status>
        )}
      </Status>
      <Invoices />
      {manage && <Status of={account}>{(a) => <PaymentMethod account={a} onDone={account.reload} />}</Status>}
    </>
  );
}
