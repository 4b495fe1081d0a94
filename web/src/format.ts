// Numbers as the reader's locale writes them (the tenant's locale setting when known, else the browser's).
// Money arrives as integer minor units of its currency and is formatted from an exact decimal string, never
// through a floating-point division.

let locale = navigator.language || "en-US";

export function setLocale(tag: string | undefined) {
  if (!tag) return;
  try {
    new Intl.NumberFormat(tag);
    locale = tag;
  } catch {
    // keep the browser's
  }
}

export function minorDigits(currency: string): number {
  try {
    return new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

// "123456" minor units of EUR -> "1234.56" (exact, any size).
export function decimalText(minor: number | bigint, currency: string): string {
  const digits = minorDigits(currency);
  const negative = minor < 0;
  let text = (negative ? -BigInt(minor) : BigInt(minor)).toString();
  if (digits > 0) {
    text = text.padStart(digits + 1, "0");
    text = `${text.slice(0, -digits)}.${text.slice(-digits)}`;
  }
  return (negative ? "-" : "") + text;
}

export function money(minor: number | null | undefined, currency: string): string {
  if (minor === null || minor === undefined) return "—";
  const f = new Intl.NumberFormat(locale, { style: "currency", currency });
  // Intl formats a decimal string exactly (Intl.NumberFormat v3).
  return (f.format as (v: string) => string)(decimalText(minor, currency));
}

export function integer(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(n);
}

export function decimal(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(n);
}

export function percent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined) return "—";
  return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(fraction);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  const units: [number, Intl.RelativeTimeFormatUnit][] = [
    [86400, "day"],
    [3600, "hour"],
    [60, "minute"],
  ];
  for (const [size, unit] of units) {
    if (seconds >= size) {
      return new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay: "long", maximumFractionDigits: 1 }).format(
        seconds / size,
      );
    }
  }
  return new Intl.NumberFormat(locale, { style: "unit", unit: "second", unitDisplay: "long" }).format(seconds);
}

export function day(iso: string): string {
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00Z` : iso);
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(d);
}

export function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

// [from, to) as YYYY-MM-DD for the last `days` days up to and including today (UTC).
export function lastDays(days: number, now = new Date()): { from: string; to: string } {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return { from: isoDay(new Date(today - (days - 1) * 86400000)), to: isoDay(new Date(today + 86400000)) };
}
