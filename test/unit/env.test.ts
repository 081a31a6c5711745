import { describe, expect, it } from "vitest";
import { readEnv } from "../../src/config/env.js";

describe("REPLY_TO", () => {
  it("accepts an email address", () => {
    const result = readEnv({ REPLY_TO: "help@shop.example" });
    expect(result.ok && result.env.REPLY_TO).toBe("help@shop.example");
  });

  it.each([{}, { REPLY_TO: "" }])("is unset when absent or empty (%j)", (source) => {
    const result = readEnv(source);
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.REPLY_TO).toBeUndefined();
  });

  it.each(["help desk", "help@", '"Corner Shop" <help@shop.example>'])(
    "refuses %j, naming the variable and what is expected",
    (value) => {
      expect(readEnv({ REPLY_TO: value })).toEqual({
        ok: false,
        problems: ["REPLY_TO: expected an email address such as help@shop.example"],
      });
    },
  );
});

describe("REDIS_URL in cluster mode", () => {
  it("refuses a database number, which a cluster does not have, naming it", () => {
    expect(
      readEnv({
        REDIS_CLUSTER: "true",
        REDIS_URL: "redis://127.0.0.1:7000, redis://127.0.0.1:7001/2",
      }),
    ).toEqual({
      ok: false,
      problems: [
        "REDIS_URL: a Redis Cluster has database 0 only: remove the database number (/2) from the URL",
      ],
    });
  });

  it.each([
    "redis://127.0.0.1:7000",
    "redis://127.0.0.1:7000/",
    "redis://127.0.0.1:7000/0,redis://127.0.0.1:7001",
  ])("accepts seeds without one, or with 0 (%s)", (REDIS_URL) => {
    const result = readEnv({ REDIS_CLUSTER: "true", REDIS_URL });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.env.REDIS_CLUSTER).toBe(true);
  });

  it("leaves a single Redis's database number alone", () => {
    const result = readEnv({ REDIS_URL: "redis://127.0.0.1:6380/3" });
    expect(result.ok && result.env.REDIS_URL).toBe("redis://127.0.0.1:6380/3");
  });
});

describe("problems across variables", () => {
  it("are listed with the invalid values in one start, not in a second round", () => {
    expect(
      readEnv({
        FOLLOW_UP_SHARDS: "many",
        FOLLOW_UP_SHARDS_SERVED: "0-x",
        SMTP_URL: "smtp://127.0.0.1:2525",
        TWILIO_ACCOUNT_SID: "not-a-sid",
        TWILIO_AUTH_TOKEN: "token-of-some-length",
      }),
    ).toEqual({
      ok: false,
      problems: [
        "FOLLOW_UP_SHARDS: expected a whole number of shards, 1 to 1024",
        expect.stringMatching(/^TWILIO_ACCOUNT_SID: /),
        expect.stringMatching(/^FOLLOW_UP_SHARDS_SERVED: expected shard numbers/),
        "MAIL_FROM: required when SMTP_URL is set",
      ],
    });
  });
});
