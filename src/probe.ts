/**
 * Health probe for container orchestrators (docker-compose healthchecks): exits 0 when the URL
 * answers 2xx within 4 s, 1 otherwise. The images carry no curl; Node is already there.
 */
async function main(url: string | undefined): Promise<number> {
  if (!url) {
    console.error('usage: node dist/probe.js <url>');
    return 2;
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(4_000) });
    await res.arrayBuffer();
    if (!res.ok) console.error(`${url} answered ${res.status}`);
    return res.ok ? 0 : 1;
  } catch (err) {
    console.error(`${url}: ${(err as Error).message}`);
    return 1;
  }
}

void main(process.argv[2]).then((code) => {
  process.exitCode = code;
});
