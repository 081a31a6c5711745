import { describe, expect, it } from "vitest";
import { connectFailureText, tellingConnectError } from "../../src/store/redis-client.js";

const parse = new Error('Unknown RESP type 72 "H". Please report this.');
const pipe = new Error("write EPIPE");

describe("why connecting to Redis failed", () => {
  it("keeps the reply parser's error over a broken pipe or reset, whichever came first", () => {
    // An HTTP server answers in its own protocol and hangs up: both errors, in either order.
    expect(tellingConnectError(tellingConnectError(undefined, pipe), parse)).toBe(parse);
    expect(tellingConnectError(tellingConnectError(undefined, parse), pipe)).toBe(parse);
    // Otherwise the first error says why.
    const refused = new Error("connect ECONNREFUSED 127.0.0.1:1");
    expect(tellingConnectError(refused, pipe)).toBe(refused);
  });

  it("says in words what ioredis says about its parser, and hints at TLS for rediss://", () => {
    expect(connectFailureText(parse, "redis://127.0.0.1:8080")).toBe(
      "what answers there does not speak the Redis protocol (an HTTP server, say): check the host and port",
    );
    expect(connectFailureText(new Error("connect ETIMEDOUT"), "rediss://redis.example:6379")).toBe(
      "connect ETIMEDOUT (the URL asks for TLS with rediss://: does that port serve TLS?)",
    );
    expect(connectFailureText(new Error("connect ETIMEDOUT"), "redis://redis.example:6379")).toBe(
      "connect ETIMEDOUT",
    );
    // A plain Redis waits for a command it can read in the TLS handshake: it never answers.
    const silent = new Error("no ready answer within 10 s");
    expect(connectFailureText(silent, "rediss://redis.example:6379")).toBe(
      "no ready answer within 10 s (the URL asks for TLS with rediss://: does that port serve TLS?)",
    );
  });
});
