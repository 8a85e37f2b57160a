// machinectl-style output: aligned columns with a header and a footer (the
// "legend", dropped by --no-legend), or JSON for scripts.
export interface TableOptions {
  legend: boolean;
  /** the footer, e.g. "2 machines listed." */
  footer?: string;
}

export function formatTable(headers: string[], rows: string[][], o: TableOptions): string {
  const widths = headers.map((h, i) => Math.max(o.legend ? h.length : 0, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join(" ").trimEnd();
  const out: string[] = [];
  if (o.legend) out.push(line(headers));
  for (const r of rows) out.push(line(r));
  if (o.legend && o.footer) out.push("", o.footer);
  return out.join("\n");
}

/** JSON as systemd's tools print it: one line (short), or indented by eight (pretty). */
export function formatJson(value: unknown, mode: string | boolean): string {
  return mode === "short" ? JSON.stringify(value) : JSON.stringify(value, null, 8);
}

/** bytes → "12.3M" as systemd prints sizes */
export function formatBytes(n: number | bigint): string {
  let v = Number(n);
  const units = ["B", "K", "M", "G", "T", "P"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v}${units[i]}` : `${v >= 10 ? v.toFixed(0) : v.toFixed(1)}${units[i]}`;
}

export function formatTimestamp(us: number): string {
  const d = new Date(us / 1000);
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const p = (n: number) => String(n).padStart(2, "0");
  return `${days[d.getUTCDay()]} ${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} UTC`;
}

export function formatAgo(us: number, now = Date.now() * 1000): string {
  let s = Math.max(0, Math.round((now - us) / 1e6));
  const parts: string[] = [];
  const units: Array<[string, number]> = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
  for (const [u, n] of units) {
    if (s >= n || (u === "s" && parts.length === 0)) {
      parts.push(`${Math.floor(s / n)}${u}`);
      s %= n;
    }
    if (parts.length === 2) break;
  }
  return `${parts.join(" ")} ago`;
}
