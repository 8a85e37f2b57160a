// The screen model behind `console NAME`: what a terminal shows after a stream of output.
import { describe, expect, test } from "bun:test";
import { Screen } from "../../src/util/vt.ts";

const feed = (s: Screen, text: string) => s.feed(new TextEncoder().encode(text));

describe("Screen", () => {
  test("lines, carriage returns and wrapping at the last column", () => {
    const s = new Screen(4, 10);
    feed(s, "hello\r\nworld\rW\r\n0123456789ab");
    expect(s.lines()).toEqual(["hello", "World", "0123456789", "ab"]);
    expect(s.cursor).toEqual({ row: 3, col: 2 });
  });

  test("scrolling keeps the last rows", () => {
    const s = new Screen(3, 20);
    feed(s, "1\r\n2\r\n3\r\n4\r\n5");
    expect(s.lines()).toEqual(["3", "4", "5"]);
  });

  test("cursor movement, erase line and display, colours dropped", () => {
    const s = new Screen(5, 20);
    feed(s, "\x1b[1;31mred\x1b[0m text\x1b[3;5Hmid\x1b[1;1H\x1b[Kx\x1b[5;1Hlast\x1b[4;1H\x1b[1J");
    expect(s.lines()).toEqual(["", "", "", "", "last"]);
    feed(s, "\x1b[2J\x1b[H\x1b[2Cab\x1b[1Dc");
    expect(s.lines()[0]).toBe("  ac");
  });

  test("a sequence cut between two chunks, OSC titles and charsets leave no garbage", () => {
    const s = new Screen(2, 30);
    s.feed(new TextEncoder().encode("a\x1b[3"));
    s.feed(new TextEncoder().encode("1mb\x1b]0;title\x07c\x1b(Bd"));
    expect(s.lines()).toEqual(["abcd"]);
  });

  test("a full-screen program on the alternate screen, then the main screen back", () => {
    const s = new Screen(3, 20);
    feed(s, "$ top\r\n");
    feed(s, "\x1b[?1049h\x1b[H\x1b[2Jtop - 10:00");
    expect(s.lines()[0]).toBe("top - 10:00");
    feed(s, "\x1b[?1049l");
    expect(s.lines()).toEqual(["$ top", ""]);
  });

  test("UTF-8 split across chunks, and render() redraws with the cursor in place", () => {
    const s = new Screen(2, 10);
    const b = new TextEncoder().encode("grüß");
    s.feed(b.subarray(0, 3));
    s.feed(b.subarray(3));
    expect(s.lines()).toEqual(["grüß"]);
    expect(s.render()).toBe("\x1b[H\x1b[2Jgrüß\x1b[1;5H");
    feed(s, "\r\nx\x1b[1;2H");
    expect(s.renderInline()).toBe("grüß\r\nx\x1b[1A\x1b[2G");
  });

  test("a hostile guest's huge counts cost nothing", () => {
    const s = new Screen(24, 80);
    const t0 = performance.now();
    feed(s, "x\x1b[999999999S\x1b[999999999L\x1b[999999999M\x1b[999999999T\x1b[999999999@\x1b[999999999X\x1b[999999999;999999999Hy");
    expect(performance.now() - t0).toBeLessThan(500);
    expect(s.cursor).toEqual({ row: 23, col: 79 });
  });

  test("a login prompt after boot messages with a scroll region", () => {
    const s = new Screen(4, 40);
    feed(s, "[  OK  ] Started getty\r\n\r\nDebian GNU/Linux 12 box console\r\n\r\nbox login: ");
    expect(s.lines()).toEqual(["", "Debian GNU/Linux 12 box console", "", "box login:"]);
    expect(s.cursor).toEqual({ row: 3, col: 11 });
  });
});

test("journal's console log: colours pass on a terminal, nothing else; off a terminal no escapes at all", async () => {
  const { colorsOnly, stripEscapes } = await import("../../src/machine/journal.ts");
  const hostile = "\x1b[1;32mok\x1b[0m \x1b]0;pwned\x07title \x1b[2J\x1b[?1049hcleared\r\nline\x07";
  expect(colorsOnly(hostile)).toBe("\x1b[1;32mok\x1b[0m title cleared\nline");
  expect(stripEscapes(hostile)).toBe("ok title cleared\nline");
});
