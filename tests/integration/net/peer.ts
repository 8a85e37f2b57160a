// A tiny TCP peer for the network tests, run inside a namespace with nsenter:
//   bun peer.ts serve PORT [HOST]   answer each connection with the client's address, then close
//   bun peer.ts connect HOST PORT   print what the server sent; exit 1 on failure or after 3 s
export {};

const [mode, a, b] = process.argv.slice(2);

if (mode === "serve") {
  Bun.listen({
    hostname: b ?? "0.0.0.0",
    port: Number(a),
    socket: {
      open(s) {
        s.end(`${s.remoteAddress}\n`);
      },
      data() {},
    },
  });
  console.log("ready");
} else if (mode === "connect") {
  const timer = setTimeout(() => {
    console.error("timed out");
    process.exit(1);
  }, 3000);
  let got = "";
  await Bun.connect({
    hostname: a!,
    port: Number(b),
    socket: {
      data(_s, d) {
        got += d.toString();
      },
      close() {
        clearTimeout(timer);
        process.stdout.write(got);
        process.exit(got ? 0 : 1);
      },
      connectError(_s, e) {
        console.error(e.message);
        process.exit(1);
      },
    },
  }).catch((e) => {
    console.error(e.message);
    process.exit(1);
  });
} else {
  console.error("usage: peer.ts serve PORT [HOST] | connect HOST PORT");
  process.exit(2);
}
