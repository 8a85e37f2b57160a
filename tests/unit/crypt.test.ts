import { expect, test } from "bun:test";
import { sha512crypt } from "../../src/util/crypt.ts";
import { cleartext } from "../../src/bootstrap/debian.ts";
import { destination } from "../../src/cli/bootstrap.ts";

test("SHA-512-crypt matches the specification's test vectors", () => {
  expect(sha512crypt("Hello world!", "saltstring")).toBe("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1");
  expect(sha512crypt("Hello world!", "saltstringsaltstring", 10000)).toBe("$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.");
  expect(sha512crypt("This is just a test", "toolongsaltstring", 5000)).toBe("$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0");
});

test("cleartext of a clear-signed file undoes dash escaping", () => {
  const t = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\n- -dashed\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n";
  expect(cleartext(t)).toBe("Origin: x\n-dashed");
});

test("DEST is a path or a machine name", () => {
  expect(destination("web")).toBe("/var/lib/machines/web");
  expect(destination("/srv/x")).toBe("/srv/x");
  expect(() => destination("bad name")).toThrow("Invalid machine name");
});
