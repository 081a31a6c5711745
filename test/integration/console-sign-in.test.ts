import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { Env } from "../../src/config/env.js";
import {
  CONSOLE_SESSION_MAX_MS,
  CONSOLE_SESSION_MS,
  ConsoleSessions,
  tokenTag,
} from "../../src/store/console-sessions.js";
import { StoreKeys } from "../../src/store/keys.js";
import type { WorkerHandle } from "../../src/worker.js";
import { type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";

/** Signing in to the console: the attempts' limit, proxies, and how long a session lasts. */

const TOKEN = "console-token-0123456789";

let pipeline: PipelineHarness | undefined;
const extraWorkers: WorkerHandle[] = [];
afterEach(async () => {
  await Promise.all(extraWorkers.splice(0).map((worker) => worker.close()));
  await pipeline?.close();
  pipeline = undefined;
});

/** Another worker process's equal on the pipeline's Redis (closed after the test). */
async function startWorker(
  p: PipelineHarness,
  overrides: Partial<Env> = {},
): Promise<WorkerHandle> {
  const kept = p.worker;
  const worker = await p.startWorker(overrides);
  p.worker = kept;
  extraWorkers.push(worker);
  return worker;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("base64url");

/** The sign-in page's CSRF cookie and token, as a browser gets them. */
async function signInForm(base: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/console/sign-in`, { headers });
  const token = /name="_csrf" value="([^"]+)"/.exec(await response.text())?.[1] ?? "";
  const setCookie = response.headers.getSetCookie()[0] ?? "";
  return { token, cookie: setCookie.split(";")[0] ?? "", setCookie };
}

/** One attempt to sign in with a wrong token; its status (401 refused, 429 too many). */
async function wrongSignIn(base: string, headers: Record<string, string> = {}): Promise<number> {
  const form = await signInForm(base, headers);
  const response = await fetch(`${base}/console/sign-in`, {
    method: "POST",
    redirect: "manual",
    headers: {
      ...headers,
      cookie: form.cookie,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ _csrf: form.token, token: "not-the-token-0123456789" }),
  });
  await response.arrayBuffer();
  return response.status;
}

describe("console sign-in", () => {
  it("limits attempts per client address across worker processes, the client named by a trusted proxy", async () => {
    pipeline = await startPipeline("sign-in-limit", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}`, TRUST_PROXY: "127.0.0.1" },
    });
    const first = pipeline.worker?.httpAddress ?? "";
    const other = await startWorker(pipeline);
    const second = other.httpAddress ?? "";
    const from = (address: string) => ({ "x-forwarded-for": address });

    // Ten attempts from one address, spread over two workers, then an eleventh: refused by both.
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++)
      statuses.push(await wrongSignIn(i % 2 === 0 ? first : second, from("203.0.113.7")));
    expect(statuses).toEqual(Array(10).fill(401));
    expect(await wrongSignIn(second, from("203.0.113.7"))).toBe(429);
    expect(await wrongSignIn(first, from("203.0.113.7"))).toBe(429);
    // Another client behind the same proxy is not locked out by the first.
    expect(await wrongSignIn(second, from("198.51.100.9"))).toBe(401);

    // Redis holds no client address: the counts are named by a keyed hash.
    const counted = await pipeline.redis.keys(
      `${new StoreKeys(pipeline.prefix).consoleSignIns()}*`,
    );
    expect(counted.length).toBe(2);
    expect(counted.join(" ")).not.toMatch(/203\.0\.113|198\.51\.100/);
  });

  it("believes X-Forwarded-For and X-Forwarded-Proto only from a proxy TRUST_PROXY names", async () => {
    pipeline = await startPipeline("sign-in-proxy", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const direct = pipeline.worker?.httpAddress ?? "";
    // Not trusted (the default): a client cannot escape the limit by naming other addresses.
    for (let i = 0; i < 10; i++)
      expect(await wrongSignIn(direct, { "x-forwarded-for": `192.0.2.${i + 1}` })).toBe(401);
    expect(await wrongSignIn(direct, { "x-forwarded-for": "192.0.2.99" })).toBe(429);
    // Nor make a cookie Secure, or not, by saying https.
    const https = { "x-forwarded-proto": "https" };
    expect((await signInForm(direct, https)).setCookie).not.toMatch(/;\s*Secure/i);

    // Behind a TLS-terminating proxy it names: the console's cookies are Secure.
    const proxied = await startWorker(pipeline, { TRUST_PROXY: ["127.0.0.1"] });
    const viaProxy = await signInForm(proxied.httpAddress ?? "", https);
    expect(viaProxy.setCookie).toMatch(/;\s*Secure/i);
  });

  it("makes every console cookie Secure when reached through an https PUBLIC_URL, not the session's alone", async () => {
    pipeline = await startPipeline("sign-in-public-url", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}` },
    });
    const base = new URL(pipeline.worker?.httpAddress ?? "");
    // As a proxy that passes the Host on (not named in TRUST_PROXY) sends it: PUBLIC_URL's host.
    const host = new URL(pipeline.envVars.PUBLIC_URL ?? "").host;
    const send = (method: string, path: string, cookie: string, body = "") =>
      new Promise<{ status: number; cookies: string[]; text: string }>((resolve, reject) => {
        const request = httpRequest(
          {
            host: base.hostname,
            port: base.port,
            method,
            path,
            headers: {
              host,
              cookie,
              ...(body && { "content-type": "application/x-www-form-urlencoded" }),
            },
          },
          (response) => {
            let text = "";
            response.on("data", (chunk: Buffer) => {
              text += chunk.toString();
            });
            response.on("end", () =>
              resolve({
                status: response.statusCode ?? 0,
                cookies: response.headers["set-cookie"] ?? [],
                text,
              }),
            );
          },
        );
        request.on("error", reject);
        request.end(body);
      });
    const csrfOf = (text: string) => /name="_csrf" value="([^"]+)"/.exec(text)?.[1] ?? "";
    const pair = (cookie: string) => cookie.split(";")[0] ?? "";
    const form = await send("GET", "/console/sign-in", "");
    const csrfCookie = form.cookies.find((cookie) => cookie.startsWith("fu_console_csrf="));
    expect(csrfCookie).toMatch(/;\s*Secure/i);
    const signedIn = await send(
      "POST",
      "/console/sign-in",
      pair(csrfCookie ?? ""),
      new URLSearchParams({ _csrf: csrfOf(form.text), token: TOKEN }).toString(),
    );
    expect(signedIn.status).toBe(303);
    const session = signedIn.cookies.find((cookie) => cookie.startsWith("fu_console="));
    expect(session).toMatch(/;\s*Secure/i);
    const cookies = `${pair(csrfCookie ?? "")}; ${pair(session ?? "")}`;
    const page = await send("GET", "/console/failed", cookies);
    const retried = await send(
      "POST",
      "/console/failed/retry",
      cookies,
      new URLSearchParams({ _csrf: csrfOf(page.text) }).toString(),
    );
    expect(retried.status).toBe(303);
    const notice = retried.cookies.find((cookie) => cookie.startsWith("fu_console_notice="));
    expect(notice).toMatch(/;\s*Secure/i);
  });

  it("with TRUST_PROXY=true believes only the nearest proxy: a client's own X-Forwarded-For does not escape the limit", async () => {
    pipeline = await startPipeline("sign-in-any-proxy", {
      env: { ADMIN_TOKENS: `dana:${TOKEN}`, TRUST_PROXY: "true" },
    });
    const base = pipeline.worker?.httpAddress ?? "";
    // The proxy (this test) appends the client's address to what the client sent.
    const spoofed = (i: number) => ({ "x-forwarded-for": `192.0.2.${i + 1}, 203.0.113.7` });
    for (let i = 0; i < 10; i++) expect(await wrongSignIn(base, spoofed(i))).toBe(401);
    expect(await wrongSignIn(base, spoofed(99))).toBe(429);
    expect((await signInForm(base, { "x-forwarded-proto": "https" })).setCookie).toMatch(
      /;\s*Secure/i,
    );
  });
});

describe("console sessions", () => {
  it("end twelve hours after sign-in however they are used, and are kept alive no further", async () => {
    pipeline = await startPipeline("session-end", { startWorker: false });
    let now = Date.UTC(2026, 11, 5, 8, 0);
    const sessions = new ConsoleSessions(pipeline.redis, pipeline.prefix, () => now);
    const id = await sessions.start("dana", TOKEN);
    const key = new StoreKeys(pipeline.prefix).consoleSession(sha256(id));

    // Used every few hours: alive, each use keeping it eight hours more.
    for (const hours of [3, 6, 9]) {
      now = Date.UTC(2026, 11, 5, 8 + hours, 0);
      const session = await sessions.sessionOf(id);
      expect(session).toEqual({
        name: "dana",
        tokenTag: tokenTag(TOKEN),
        startedAt: expect.any(Number),
      });
      if (session) await sessions.keepAlive(id, session);
    }
    // At 17:00 it has three hours left of its twelve: kept alive that long, not eight.
    expect(await pipeline.redis.pttl(key)).toBeLessThanOrEqual(3 * 3600 * 1000);
    expect(await pipeline.redis.pttl(key)).toBeGreaterThan(3 * 3600 * 1000 - 60_000);
    now = Date.UTC(2026, 11, 5, 8, 0) + CONSOLE_SESSION_MAX_MS - 1;
    expect(await sessions.sessionOf(id)).toBeDefined();
    now += 1;
    expect(await sessions.sessionOf(id)).toBeUndefined();
    expect(CONSOLE_SESSION_MS).toBeLessThan(CONSOLE_SESSION_MAX_MS);
  });

  it("refuses a session stored by an earlier version, which has no sign-in time", async () => {
    pipeline = await startPipeline("session-legacy", { startWorker: false });
    const sessions = new ConsoleSessions(pipeline.redis, pipeline.prefix);
    const id = "an-old-session-id-0123456789";
    const key = new StoreKeys(pipeline.prefix).consoleSession(sha256(id));
    await pipeline.redis.set(key, `dana\n${tokenTag(TOKEN)}`, "PX", CONSOLE_SESSION_MS);
    expect(await sessions.sessionOf(id)).toBeUndefined();
    await pipeline.redis.set(key, "dana", "PX", CONSOLE_SESSION_MS);
    expect(await sessions.sessionOf(id)).toBeUndefined();
  });
});

describe("console methods", () => {
  // A form's POST path answered 404 to GET (a link followed, a URL pasted), as if it did not
  // exist, where the rest of the HTTP API answers 405 with Allow.
  it("answers a method a console path does not take with 405 and Allow, signed in or not", async () => {
    pipeline = await startPipeline("console-methods", { env: { ADMIN_TOKENS: `dana:${TOKEN}` } });
    const base = pipeline.worker?.httpAddress ?? "";
    const session = await new ConsoleSessions(pipeline.redis, pipeline.prefix).start("dana", TOKEN);
    const cases = [
      ["GET", "/console/sign-out", "POST"],
      ["GET", "/console/steps/cancel", "POST"],
      // A GET of an erase or opt-out path leads to its confirmation (console-odd-input.test.ts).
      ["PUT", "/console/customers/cus-1/erase", "GET, HEAD, POST"],
      // The routes by the query's id (the ids . and ..) as those by the path.
      ["DELETE", "/console/customers/erase?id=..", "GET, HEAD, POST"],
      ["PATCH", "/console/customers/opt-out?id=..", "GET, HEAD, POST"],
      ["POST", "/console/customers?id=..", "GET, HEAD"],
      ["PUT", "/console/orders?id=.", "GET, HEAD"],
      ["HEAD", "/console/failed/retry", "POST"],
      ["POST", "/console/search", "GET, HEAD"],
      ["PUT", "/console/sign-in", "GET, HEAD, POST"],
      ["DELETE", "/console/plan", "GET, HEAD, POST"],
    ] as const;
    for (const cookie of [undefined, `fu_console=${session}`]) {
      for (const [method, path, allow] of cases) {
        const response = await fetch(`${base}${path}`, {
          method,
          redirect: "manual",
          headers: cookie ? { cookie } : {},
        });
        const body = method === "HEAD" ? undefined : await response.json();
        expect({
          method,
          path,
          status: response.status,
          allow: response.headers.get("allow"),
        }).toEqual({ method, path, status: 405, allow });
        if (body !== undefined)
          expect(body).toEqual({ error: `method ${method} not allowed; use ${allow}` });
      }
    }
    // The actions by the query's id, as those by the path: a session first, then the form's token.
    for (const path of ["/console/customers/erase?id=..", "/console/customers/cus-1/erase"]) {
      const action = (cookie?: string) =>
        fetch(`${base}${path}`, {
          method: "POST",
          redirect: "manual",
          headers: {
            "content-type": "application/x-www-form-urlencoded",
            ...(cookie && { cookie }),
          },
          body: "",
        });
      expect([path, (await action()).status]).toEqual([path, 401]);
      expect([path, (await action(`fu_console=${session}`)).status]).toEqual([path, 403]);
    }
    // A path nobody declared is still not found; the pages and Bull Board answer as before.
    expect((await fetch(`${base}/console/nope`)).status).toBe(404);
    const page = await fetch(`${base}/console/search`, { redirect: "manual" });
    expect([page.status, page.headers.get("location")]).toEqual([303, "/console/sign-in"]);
    const board = await fetch(`${base}/console/queues`, {
      redirect: "manual",
      headers: { cookie: `fu_console=${session}` },
    });
    expect(board.status).toBe(200);
  });
});
