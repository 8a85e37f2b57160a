// What went wrong with a network request, as a phrase a person can act on:
// the runtime's own texts ("getaddrinfo ENOTFOUND host", "ECONNREFUSED:
// Unable to connect. Is the computer able to access the url?") are mapped by
// their error code, and the host (and port) comes from the URL. The caller
// puts the URL in front: "downloading URL: <phrase>".

function hostOf(url: string): { host: string; port: string } {
  try {
    const u = new URL(url);
    const port = u.port || (u.protocol === "https:" ? "443" : u.protocol === "http:" ? "80" : "");
    return { host: u.hostname, port };
  } catch {
    return { host: url, port: "" };
  }
}

const TLS_CODES = /^(EPROTO|ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_TLS|TLS|SSL)/;

/**
 * The phrase for a failed request of `url`, or undefined when `e` is not a
 * network error this knows (the caller then shows its message as it is).
 */
export function networkReason(e: unknown, url: string): string | undefined {
  const err = e as { name?: string; code?: string; message?: string; hostname?: string };
  if (err === null || typeof err !== "object") return undefined;
  const code = typeof err.code === "string" ? err.code : "";
  const msg = typeof err.message === "string" ? err.message : "";
  const { host, port } = hostOf(url);
  const at = port ? `${host} port ${port}` : host;
  if (err.name === "TimeoutError" || code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT" || /timed? ?out/i.test(msg)) {
    return `timed out waiting for ${at} (check the network and the URL, or try again later)`;
  }
  if (code === "ENOTFOUND" || code === "EAI_NONAME" || code === "EAI_AGAIN" || code === "DNSException" || /getaddrinfo|ENOTFOUND/.test(msg)) {
    return code === "EAI_AGAIN"
      ? `host not found: ${err.hostname ?? host} (name resolution failed temporarily; check the DNS settings in /etc/resolv.conf)`
      : `host not found: ${err.hostname ?? host} (check the spelling of the URL and the DNS settings in /etc/resolv.conf)`;
  }
  if (code === "ECONNREFUSED" || code === "ConnectionRefused" || /ECONNREFUSED|Unable to connect/.test(msg)) {
    return `connection refused by ${at} (nothing is listening there, or a firewall rejects it)`;
  }
  if (code === "ECONNRESET" || code === "ConnectionClosed" || /ECONNRESET|socket connection was closed/i.test(msg)) {
    return `the connection to ${at} was closed before the transfer ended (try again; a proxy or firewall may cut it)`;
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH" || /unreachable/i.test(msg)) {
    return `no route to ${at} (the network is unreachable from this host)`;
  }
  if (TLS_CODES.test(code) || /TLS|SSL|certificate/i.test(msg)) {
    const detail = msg.replace(/^[A-Z_]+: /, "").replace(/\.$/, "");
    return `TLS failure talking to ${at}: ${detail || code} (check the URL's scheme and port, the server's certificate and this host's clock)`;
  }
  return undefined;
}

/** "HTTP 404 Not Found (no such file on the server)": the status and what it likely means. */
export function httpReason(status: number, statusText: string): string {
  const text = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  if (status === 404 || status === 410) return `${text} (no such file on the server)`;
  if (status === 401 || status === 403) return `${text} (the server refuses access)`;
  if (status === 407) return `${text} (the proxy needs credentials)`;
  if (status >= 500) return `${text} (a problem on the server's side; try again later)`;
  return text;
}
