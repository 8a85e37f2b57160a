// A small terminal screen model: what a VT100/xterm-like terminal would show
// after a stream of output. `console NAME` feeds it the console's recent
// output and draws the result, so an attach shows the current screen instead
// of a replay of raw bytes cut at an arbitrary point (half an escape
// sequence, a screen long scrolled away). Text and cursor only: colours and
// other attributes are dropped, unknown sequences skipped.

const ESC = 0x1b;

export class Screen {
  private grid: string[][];
  private alt?: { grid: string[][]; r: number; c: number };
  private r = 0;
  private c = 0;
  private saved = { r: 0, c: 0 };
  private top = 0;
  private bottom: number;
  /** the last column was written: the next printable wraps first */
  private wrapNext = false;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  /** an escape sequence cut at the end of a chunk, completed by the next */
  private pending = "";

  constructor(
    readonly rows = 24,
    readonly cols = 80,
  ) {
    this.rows = Math.max(1, Math.min(rows, 500));
    this.cols = Math.max(1, Math.min(cols, 1000));
    this.grid = this.blank();
    this.bottom = this.rows - 1;
  }

  private blank(): string[][] {
    return Array.from({ length: this.rows }, () => this.blankRow());
  }

  private blankRow(): string[] {
    return new Array<string>(this.cols).fill(" ");
  }

  feed(bytes: Uint8Array): void {
    const text = this.pending + this.decoder.decode(bytes, { stream: true });
    this.pending = "";
    let i = 0;
    while (i < text.length) {
      const ch = text.charCodeAt(i);
      if (ch === ESC) {
        const end = this.escape(text, i);
        if (end < 0) {
          // incomplete: wait for the rest (a runaway one is dropped)
          if (text.length - i < 256) this.pending = text.slice(i);
          return;
        }
        i = end;
        continue;
      }
      if (ch < 0x20 || ch === 0x7f) this.control(ch);
      else {
        const cp = text.codePointAt(i)!;
        this.put(String.fromCodePoint(cp));
        i += cp > 0xffff ? 2 : 1;
        continue;
      }
      i++;
    }
  }

  private control(ch: number): void {
    switch (ch) {
      case 0x0d: this.c = 0; this.wrapNext = false; break;
      case 0x0a: case 0x0b: case 0x0c: this.lineFeed(); break;
      case 0x08: if (this.c > 0) this.c--; this.wrapNext = false; break;
      case 0x09: this.c = Math.min(this.cols - 1, (Math.floor(this.c / 8) + 1) * 8); break;
      default: break; // BEL, SO, SI, NUL...
    }
  }

  private put(s: string): void {
    if (this.wrapNext) {
      this.c = 0;
      this.lineFeed();
      this.wrapNext = false;
    }
    this.grid[this.r]![this.c] = s;
    if (this.c === this.cols - 1) this.wrapNext = true;
    else this.c++;
  }

  private lineFeed(): void {
    this.wrapNext = false;
    if (this.r === this.bottom) this.scrollUp(1);
    else if (this.r < this.rows - 1) this.r++;
  }

  private scrollUp(n: number): void {
    for (let k = 0; k < n; k++) {
      this.grid.splice(this.top, 1);
      this.grid.splice(this.bottom, 0, this.blankRow());
    }
  }

  private scrollDown(n: number): void {
    for (let k = 0; k < n; k++) {
      this.grid.splice(this.bottom, 1);
      this.grid.splice(this.top, 0, this.blankRow());
    }
  }

  /** The escape sequence at i: the index after it, or -1 when it is not complete yet. */
  private escape(t: string, i: number): number {
    if (i + 1 >= t.length) return -1;
    const k = t[i + 1]!;
    if (k === "[") {
      let j = i + 2;
      while (j < t.length && (t.charCodeAt(j) < 0x40 || t.charCodeAt(j) > 0x7e)) j++;
      if (j >= t.length) return -1;
      this.csi(t.slice(i + 2, j), t[j]!);
      return j + 1;
    }
    if (k === "]" || k === "P" || k === "_" || k === "^") {
      // OSC, DCS, APC, PM: up to BEL or ST
      for (let j = i + 2; j < t.length; j++) {
        if (t.charCodeAt(j) === 0x07) return j + 1;
        if (t.charCodeAt(j) === ESC && t[j + 1] === "\\") return j + 2;
        if (t.charCodeAt(j) === ESC && j + 1 >= t.length) return -1;
      }
      return -1;
    }
    if ("()*+#%".includes(k)) return i + 3 <= t.length ? i + 3 : -1;
    switch (k) {
      case "7": this.saved = { r: this.r, c: this.c }; break;
      case "8": this.r = this.saved.r; this.c = this.saved.c; this.wrapNext = false; break;
      case "D": this.lineFeed(); break;
      case "E": this.c = 0; this.lineFeed(); break;
      case "M": if (this.r === this.top) this.scrollDown(1); else if (this.r > 0) this.r--; break;
      case "c": this.reset(); break;
      default: break;
    }
    return i + 2;
  }

  private reset(): void {
    this.grid = this.blank();
    this.r = this.c = 0;
    this.top = 0;
    this.bottom = this.rows - 1;
    this.wrapNext = false;
  }

  private csi(params: string, final: string): void {
    const priv = params.startsWith("?");
    const nums = (priv ? params.slice(1) : params).split(";").map((p) => (p === "" ? NaN : Number.parseInt(p, 10)));
    // a count is never more than the screen has (a hostile guest's ESC[999999999S costs nothing)
    const n = (k: number, d = 1) => Math.min((Number.isNaN(nums[k]!) || nums[k] === undefined ? d : nums[k]!) || d, 10_000);
    const lines = (k: number) => Math.min(n(k), this.rows);
    const clampR = (r: number) => Math.max(0, Math.min(this.rows - 1, r));
    const clampC = (c: number) => Math.max(0, Math.min(this.cols - 1, c));
    this.wrapNext = false;
    switch (final) {
      case "A": this.r = Math.max(this.r < this.top ? 0 : this.top, this.r - n(0)); break;
      case "B": this.r = Math.min(this.r > this.bottom ? this.rows - 1 : this.bottom, this.r + n(0)); break;
      case "C": this.c = clampC(this.c + n(0)); break;
      case "D": this.c = clampC(this.c - n(0)); break;
      case "E": this.r = clampR(this.r + n(0)); this.c = 0; break;
      case "F": this.r = clampR(this.r - n(0)); this.c = 0; break;
      case "G": case "`": this.c = clampC(n(0) - 1); break;
      case "d": this.r = clampR(n(0) - 1); break;
      case "H": case "f": this.r = clampR(n(0) - 1); this.c = clampC(n(1) - 1); break;
      case "J": this.eraseDisplay(Number.isNaN(nums[0]!) ? 0 : nums[0]!); break;
      case "K": this.eraseLine(Number.isNaN(nums[0]!) ? 0 : nums[0]!); break;
      case "X": for (let k = 0; k < n(0) && this.c + k < this.cols; k++) this.grid[this.r]![this.c + k] = " "; break;
      case "P": { const row = this.grid[this.r]!; row.splice(this.c, Math.min(n(0), this.cols - this.c)); while (row.length < this.cols) row.push(" "); break; }
      case "@": { const row = this.grid[this.r]!; row.splice(this.c, 0, ...new Array<string>(Math.min(n(0), this.cols - this.c)).fill(" ")); row.length = this.cols; break; }
      case "L": if (this.r >= this.top && this.r <= this.bottom) for (let k = 0; k < lines(0); k++) { this.grid.splice(this.bottom, 1); this.grid.splice(this.r, 0, this.blankRow()); } break;
      case "M": if (this.r >= this.top && this.r <= this.bottom) for (let k = 0; k < lines(0); k++) { this.grid.splice(this.r, 1); this.grid.splice(this.bottom, 0, this.blankRow()); } break;
      case "S": this.scrollUp(lines(0)); break;
      case "T": this.scrollDown(lines(0)); break;
      case "r": {
        const t = n(0) - 1, b = n(1, this.rows) - 1;
        if (t < b && b < this.rows) {
          this.top = t;
          this.bottom = b;
          this.r = 0;
          this.c = 0;
        }
        break;
      }
      case "s": this.saved = { r: this.r, c: this.c }; break;
      case "u": this.r = this.saved.r; this.c = this.saved.c; break;
      case "h": case "l":
        // the alternate screen (full-screen programs): their screen while on, the main one after
        if (priv && nums.some((x) => x === 1049 || x === 47 || x === 1047)) {
          if (final === "h" && !this.alt) {
            this.alt = { grid: this.grid, r: this.r, c: this.c };
            this.grid = this.blank();
          } else if (final === "l" && this.alt) {
            ({ grid: this.grid, r: this.r, c: this.c } = this.alt);
            this.alt = undefined;
          }
        }
        break;
      default: break; // SGR (m) and the rest change nothing shown as text
    }
  }

  private eraseDisplay(mode: number): void {
    if (mode === 2 || mode === 3) {
      this.grid = this.blank();
      return;
    }
    if (mode === 0) {
      this.eraseLine(0);
      for (let r = this.r + 1; r < this.rows; r++) this.grid[r] = this.blankRow();
    } else if (mode === 1) {
      this.eraseLine(1);
      for (let r = 0; r < this.r; r++) this.grid[r] = this.blankRow();
    }
  }

  private eraseLine(mode: number): void {
    const row = this.grid[this.r]!;
    const [from, to] = mode === 0 ? [this.c, this.cols] : mode === 1 ? [0, this.c + 1] : [0, this.cols];
    for (let c = from; c < to; c++) row[c] = " ";
  }

  /** The screen's lines, trailing blanks removed, down to the last one with text or the cursor. */
  lines(): string[] {
    const out = this.grid.map((row) => row.join("").trimEnd());
    let last = out.length - 1;
    while (last > this.r && out[last] === "") last--;
    return out.slice(0, last + 1);
  }

  get cursor(): { row: number; col: number } {
    return { row: this.r, col: this.c };
  }

  /** What shows this screen on a terminal below what it shows already: the lines, then the cursor where it was. */
  renderInline(): string {
    const lines = this.lines();
    const up = lines.length - 1 - this.r;
    return `${lines.join("\r\n")}${up > 0 ? `\x1b[${up}A` : ""}\x1b[${this.c + 1}G`;
  }

  /** What redraws this screen on a terminal: clear it, the lines, the cursor where it was. */
  render(): string {
    return `\x1b[H\x1b[2J${this.lines().join("\r\n")}\x1b[${this.r + 1};${this.c + 1}H`;
  }
}
